package env

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParsePR_RejectsWhatIsNotAPositiveInteger(t *testing.T) {
	for _, in := range []string{"0", "-3", "abc", "", "1.5", "12a"} {
		t.Run(in, func(t *testing.T) {
			_, err := ParsePR(in)
			if !errors.Is(err, ErrBadPR) {
				t.Fatalf("ParsePR(%q) = %v, want ErrBadPR", in, err)
			}
			if !strings.Contains(err.Error(), "positive integer") {
				t.Errorf("error %q does not say what is wanted", err)
			}
		})
	}
	if n, err := ParsePR("12"); err != nil || n != 12 {
		t.Fatalf("ParsePR(12) = %d, %v", n, err)
	}
}

var dnsLabel = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)

func TestKeyName_IsAValidLabelWhateverTheRepository(t *testing.T) {
	cases := []struct {
		repo string
		pr   int
		max  int
		want string
	}{
		{"", 12, 63, "pr-12"},
		{"acme/shop", 7, 63, ""},
		{"Acme/Shop.Web__Front--end", 123456, 63, ""},
		{"a-very-long-organisation-name/an-even-longer-repository-name-that-goes-on", 99999, 53, ""},
		{"x/y", 1, 12, ""},
	}
	for _, c := range cases {
		k, err := NewKey(c.repo, c.pr)
		if err != nil {
			t.Fatal(err)
		}
		got := k.NameMax(c.max)
		if c.want != "" && got != c.want {
			t.Errorf("%v: name %q, want %q", k, got, c.want)
		}
		if len(got) > c.max || !dnsLabel.MatchString(got) || strings.Contains(got, "--") {
			t.Errorf("%v: name %q is not a valid label of at most %d", k, got, c.max)
		}
	}
	a, _ := NewKey("acme/shop", 1)
	b, _ := NewKey("acme/shop2", 1)
	if a.Name() == b.Name() {
		t.Errorf("two repositories share the name %q", a.Name())
	}
}

func TestKey_RoundTripsThroughString(t *testing.T) {
	for _, s := range []string{"#3", "acme/shop#12"} {
		k, err := ParseKey(s)
		if err != nil || k.String() != s {
			t.Errorf("ParseKey(%q) = %v, %v", s, k, err)
		}
	}
	if _, err := ParseKey("acme/shop#0"); err == nil {
		t.Error("ParseKey accepted PR 0")
	}
}

func TestLabels_CarryOwnerKeyAndExpiry(t *testing.T) {
	k, _ := NewKey("acme/shop", 4)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l := Labels("team-a", k, now, 48*time.Hour)
	want := map[string]string{
		LabelOwner: "team-a", LabelKey: "acme/shop#4", LabelPR: "4", LabelRepo: "acme/shop",
		LabelCreatedAt: "2026-01-02T03:04:05Z", LabelExpiresAt: "2026-01-04T03:04:05Z", LabelEphemeral: "true",
	}
	for key, v := range want {
		if l[key] != v {
			t.Errorf("label %s = %q, want %q", key, l[key], v)
		}
	}
}
