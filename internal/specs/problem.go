package specs

import (
	"errors"
	"fmt"
)

// Problem is something only the user can fix: a spec the operator cannot honour, a Secret the
// server cannot start with, a volume the StorageClass cannot grow, a database or store that is
// not usable. It is the one way every step reports one. Reason is the CamelCase condition
// reason; Message names the field, the offending value (never a Secret's) and the fix.
//
// A Problem is an error, so pure builders can return it with other failures; the controller
// turns it into a condition and an event and does not retry it with a backoff (the watches
// bring the server back once the user changed something).
type Problem struct {
	Reason  string
	Message string
}

func (p *Problem) Error() string { return p.Message }

// Problemf builds a Problem.
func Problemf(reason, format string, args ...any) *Problem {
	return &Problem{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// AsProblem returns the Problem in err's chain, if any.
func AsProblem(err error) (*Problem, bool) {
	var p *Problem
	if errors.As(err, &p) {
		return p, true
	}
	return nil, false
}
