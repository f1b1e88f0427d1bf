package aurora

import (
	"errors"
	"testing"

	smithy "github.com/aws/smithy-go"

	"github.com/prenv/prenv/internal/dbclone"
)

// The waits tell a throttled describe from a failed one after explain has
// worded it: the explained error must keep the AWS error it wraps.
func TestExplain_KeepsTheFaultItWords(t *testing.T) {
	c := &Cloner{}
	throttled := c.explain(&smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}, "describe cluster x")
	if !isThrottle(throttled) {
		t.Fatalf("an explained throttle is no longer one: %v", throttled)
	}
	quota := c.explain(&smithy.GenericAPIError{Code: "InstanceQuotaExceeded"}, "create the writer")
	if !errors.Is(quota, dbclone.ErrCapacity) || code(quota) != "InstanceQuotaExceeded" {
		t.Fatalf("an explained quota fault: %v (code %q)", quota, code(quota))
	}
	denied := c.explain(&smithy.GenericAPIError{Code: "AccessDenied"}, "clone")
	if code(denied) != "AccessDenied" {
		t.Fatalf("an explained refusal lost its code: %v", denied)
	}
}
