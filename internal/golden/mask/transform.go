package mask

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"strconv"
	"strings"
	"time"
)

// kind is what a transformer needs to know of a column's type.
type kind string

const (
	kindText      kind = "text"
	kindInt       kind = "integer"
	kindNumber    kind = "number"
	kindDate      kind = "date"
	kindTimestamp kind = "timestamp"
	kindJSON      kind = "json"
	kindUUID      kind = "uuid"
	kindInet      kind = "inet"
	kindOther     kind = "other"
)

// kindOf maps a base type (domains resolved) to a kind.
func kindOf(typname, category string) kind {
	switch typname {
	case "int2", "int4", "int8":
		return kindInt
	case "numeric", "float4", "float8":
		return kindNumber
	case "date":
		return kindDate
	case "timestamp", "timestamptz":
		return kindTimestamp
	case "json", "jsonb":
		return kindJSON
	case "uuid":
		return kindUUID
	case "inet", "cidr":
		return kindInet
	}
	if category == "S" {
		return kindText
	}
	return kindOther
}

// keyed derives every fake from HMAC-SHA256(salt, name || 0 || input): the
// name keeps transformers apart (hash("x") says nothing of email("x")),
// the salt makes outputs unguessable without it. Not safe for concurrent
// use: one per table stream.
type keyed struct {
	mac hash.Hash
	sum [sha256.Size]byte
}

func newKeyed(salt string) *keyed { return &keyed{mac: hmac.New(sha256.New, []byte(salt))} }

func (k *keyed) digest(name, in string) []byte {
	k.mac.Reset()
	k.mac.Write([]byte(name))
	k.mac.Write([]byte{0})
	k.mac.Write([]byte(in))
	return k.mac.Sum(k.sum[:0])
}

// u64 returns the i-th 64-bit word of the digest (i < 4).
func u64(d []byte, i int) uint64 { return binary.BigEndian.Uint64(d[8*i:]) }

func pick(list []string, v uint64) string { return list[v%uint64(len(list))] }

// transformer masks one non-NULL value (as text); ok=false means NULL.
type transformer struct {
	fits  []kind // the column kinds it accepts; nil: any
	apply func(k *keyed, r *Rule, col kind, in string) (out string, ok bool)
	// injective is true when distinct inputs give distinct outputs in
	// practice (at least 64 keyed bits in the output).
	injective bool
}

// transformers is every transformer by name. json, template and sql are
// handled by the row stream (they need the rule's parsed form or the row).
var transformers = map[string]transformer{
	"keep":         {apply: func(_ *keyed, _ *Rule, _ kind, in string) (string, bool) { return in, true }, injective: true},
	"set_null":     {apply: func(*keyed, *Rule, kind, string) (string, bool) { return "", false }},
	"redact":       {fits: []kind{kindText}, apply: redact},
	"hash":         {fits: []kind{kindText, kindUUID}, apply: hashValue, injective: true},
	"email":        {fits: []kind{kindText}, apply: email, injective: true},
	"person_name":  {fits: []kind{kindText}, apply: personName},
	"first_name":   {fits: []kind{kindText}, apply: firstName},
	"last_name":    {fits: []kind{kindText}, apply: lastName},
	"phone":        {fits: []kind{kindText}, apply: phone},
	"address":      {fits: []kind{kindText}, apply: address},
	"ip":           {fits: []kind{kindText, kindInet}, apply: ip},
	"credit_card":  {fits: []kind{kindText}, apply: creditCard},
	"iban":         {fits: []kind{kindText}, apply: iban, injective: true},
	"date_shift":   {fits: []kind{kindDate, kindTimestamp, kindText}, apply: dateShift},
	"number_noise": {fits: []kind{kindInt, kindNumber}, apply: numberNoise},
	"template":     {fits: []kind{kindText}},
	"sql":          {},
	"json":         {fits: []kind{kindJSON}},
}

func (t transformer) fit(k kind) bool {
	if t.fits == nil {
		return true
	}
	for _, f := range t.fits {
		if f == k {
			return true
		}
	}
	return false
}

func redact(_ *keyed, r *Rule, _ kind, _ string) (string, bool) {
	if r.Value != "" {
		return r.Value, true
	}
	return "[redacted]", true
}

// hashValue is 128 keyed bits: 32 hex digits, or a version 4 UUID for uuid
// columns (122 bits), so a hashed primary key stays a key.
func hashValue(k *keyed, _ *Rule, col kind, in string) (string, bool) {
	d := k.digest("hash", in)
	if col == kindUUID {
		var u [16]byte
		copy(u[:], d)
		u[6] = u[6]&0x0f | 0x40
		u[8] = u[8]&0x3f | 0x80
		h := hex.EncodeToString(u[:])
		return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], true
	}
	return hex.EncodeToString(d[:16]), true
}

// email is first.<16 hex>@example.com: a name to read, 64 keyed bits to
// keep a unique column unique, and a domain reserved for examples (RFC 2606)
// so no mail can reach anyone. The input is lower-cased first: addresses
// differing only in case are the same mailbox in practice and must join.
func email(k *keyed, _ *Rule, _ kind, in string) (string, bool) {
	d := k.digest("email", strings.ToLower(strings.TrimSpace(in)))
	return strings.ToLower(pick(firstNames, u64(d, 1))) + "." + hex.EncodeToString(d[:8]) + "@example.com", true
}

func personName(k *keyed, _ *Rule, _ kind, in string) (string, bool) {
	d := k.digest("person_name", in)
	return pick(firstNames, u64(d, 0)) + " " + pick(lastNames, u64(d, 1)), true
}

func firstName(k *keyed, _ *Rule, _ kind, in string) (string, bool) {
	return pick(firstNames, u64(k.digest("first_name", in), 0)), true
}

func lastName(k *keyed, _ *Rule, _ kind, in string) (string, bool) {
	return pick(lastNames, u64(k.digest("last_name", in), 0)), true
}

// phone is +1-NXX-555-01XX: the North American numbers 555-0100 to
// 555-0199 are reserved for fiction in every area code. That is 80,000
// numbers, too few to be injective: a unique phone column needs hash (the
// post-check refuses a collision).
func phone(k *keyed, _ *Rule, _ kind, in string) (string, bool) {
	d := k.digest("phone", in)
	return fmt.Sprintf("+1-%03d-555-01%02d", 200+u64(d, 0)%800, u64(d, 1)%100), true
}

func address(k *keyed, _ *Rule, _ kind, in string) (string, bool) {
	d := k.digest("address", in)
	return fmt.Sprintf("%d %s, %s %05d", 1+u64(d, 0)%199, pick(streets, u64(d, 1)), pick(cities, u64(d, 2)), u64(d, 3)%100000), true
}

// ip keeps the family: IPv4 in the three documentation networks of RFC 5737
// (762 addresses, not injective), IPv6 in 2001:db8::/32 of RFC 3849 with 96
// keyed bits.
func ip(k *keyed, _ *Rule, _ kind, in string) (string, bool) {
	d := k.digest("ip", in)
	if strings.Contains(in, ":") {
		return fmt.Sprintf("2001:db8:%x:%x:%x:%x:%x:%x", binary.BigEndian.Uint16(d[0:]), binary.BigEndian.Uint16(d[2:]),
			binary.BigEndian.Uint16(d[4:]), binary.BigEndian.Uint16(d[6:]), binary.BigEndian.Uint16(d[8:]), binary.BigEndian.Uint16(d[10:])), true
	}
	nets := []string{"192.0.2.", "198.51.100.", "203.0.113."}
	return nets[u64(d, 0)%3] + strconv.Itoa(int(1+u64(d, 1)%254)), true
}

// creditCard is a 16-digit Visa test number (4000 00...) with a valid Luhn
// check digit: payment forms accept it, no issuer does. 9 free digits are
// not injective.
func creditCard(k *keyed, _ *Rule, _ kind, in string) (string, bool) {
	d := k.digest("credit_card", in)
	body := fmt.Sprintf("400000%09d", u64(d, 0)%1_000_000_000)
	return body + strconv.Itoa(luhnDigit(body)), true
}

// luhnDigit returns the check digit that makes body+digit Luhn-valid.
func luhnDigit(body string) int {
	sum := 0
	for i := len(body) - 1; i >= 0; i-- {
		n := int(body[i] - '0')
		if (len(body)-1-i)%2 == 0 {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
	}
	return (10 - sum%10) % 10
}

// iban is a German IBAN (DE, 18 digits: about 60 keyed bits) with check
// digits valid under ISO 13616 mod 97.
func iban(k *keyed, _ *Rule, _ kind, in string) (string, bool) {
	d := k.digest("iban", in)
	bban := fmt.Sprintf("%018d", u64(d, 0)%1_000_000_000_000_000_000)
	return "DE" + fmt.Sprintf("%02d", ibanCheck("DE", bban)) + bban, true
}

// ibanCheck computes the two check digits of an IBAN of country and bban.
func ibanCheck(country, bban string) int {
	return 98 - ibanMod97(bban+country+"00")
}

// ibanMod97 is the remainder mod 97 of s with letters as 10..35.
func ibanMod97(s string) int {
	rem := 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			rem = (rem*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			rem = (rem*100 + int(c-'A'+10)) % 97
		}
	}
	return rem
}

// dateShift moves a date or timestamp by ±1..days days (never 0), the
// shift keyed by the value itself: equal dates stay equal, and the time of
// day and zone are kept. Date and timestamp columns read in ISO form (Apply
// sets DateStyle); a text column may also hold 01/02/2006, 02.01.2006 or
// 2006/01/02, shifted in the same form. infinity and BC dates are left as
// they are; a text value that reads as no date becomes NULL: left as it
// was, it would be the unmasked birth date it may well be.
func dateShift(k *keyed, r *Rule, _ kind, in string) (string, bool) {
	days := r.Days
	if days <= 0 {
		days = 30
	}
	if in == "infinity" || in == "-infinity" || strings.HasSuffix(in, " BC") {
		return in, true
	}
	if len(in) < 10 {
		return "", false
	}
	for _, layout := range []string{"2006-01-02", "01/02/2006", "02.01.2006", "2006/01/02"} {
		t, err := time.Parse(layout, in[:10])
		if err != nil {
			continue
		}
		v := u64(k.digest("date_shift", in), 0) % uint64(2*days)
		shift := int(v) - days
		if shift >= 0 {
			shift++
		}
		return t.AddDate(0, 0, shift).Format(layout) + in[10:], true
	}
	return "", false
}

// numberNoise multiplies by 1 + noise·u, u in [-1, 1] keyed by the value,
// keeping the number of decimals of the input (integers stay integers).
func numberNoise(k *keyed, r *Rule, col kind, in string) (string, bool) {
	noise := r.Noise
	if noise <= 0 {
		noise = 0.1
	}
	f, err := strconv.ParseFloat(in, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return in, true
	}
	u := float64(u64(k.digest("number_noise", in), 0)>>11)/float64(1<<53)*2 - 1
	out := f * (1 + noise*u)
	decimals := 0
	if i := strings.IndexByte(in, '.'); i >= 0 && !strings.ContainsAny(in, "eE") {
		decimals = len(in) - i - 1
	}
	if col == kindInt {
		return strconv.FormatFloat(math.Round(out), 'f', 0, 64), true
	}
	if strings.ContainsAny(in, "eE") {
		return strconv.FormatFloat(out, 'g', -1, 64), true
	}
	return strconv.FormatFloat(out, 'f', decimals, 64), true
}
