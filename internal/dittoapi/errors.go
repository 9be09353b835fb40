package dittoapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
)

// Problem is an RFC 7807 problem document as DittoFS v0.29.0 writes it
// (Content-Type application/problem+json). Some middleware answers with a plain-text body
// instead (e.g. "Admin access required"); that text lands in Detail.
type Problem struct {
	Type     string `json:"type,omitempty"`
	Title    string `json:"title,omitempty"`
	Status   int    `json:"status,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	Code     string `json:"code,omitempty"`
	Hint     string `json:"hint,omitempty"`
}

// Kind classifies a failed call by what the caller should do about it.
type Kind int

// Kinds of errors.
const (
	// KindOther: a request the server rejected (400, 422, ...): fix the request.
	KindOther Kind = iota
	// KindAuth: 401 or 403: log in again or use other credentials.
	KindAuth
	// KindNotFound: 404.
	KindNotFound
	// KindConflict: 409 (already exists).
	KindConflict
	// KindTransient: 5xx, 429, a timeout or a transport error: retry later.
	KindTransient
)

func (k Kind) String() string {
	switch k {
	case KindAuth:
		return "auth"
	case KindNotFound:
		return "not-found"
	case KindConflict:
		return "conflict"
	case KindTransient:
		return "transient"
	}
	return "rejected"
}

// Error is a failed API call: an HTTP error status (Status > 0, Problem decoded) or a
// transport failure (Status 0, Err set).
type Error struct {
	Method, Path string
	Status       int
	Problem      Problem
	Err          error
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("%s %s: %v", e.Method, e.Path, e.Err)
	}
	msg := e.Problem.Detail
	if msg == "" {
		msg = e.Problem.Title
	}
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s %s: %d: %s", e.Method, e.Path, e.Status, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Message is the server's own explanation (problem detail, else title), for conditions.
func (e *Error) Message() string {
	if e.Problem.Detail != "" {
		return e.Problem.Detail
	}
	if e.Problem.Title != "" {
		return e.Problem.Title
	}
	if e.Err != nil {
		return e.Err.Error()
	}
	return http.StatusText(e.Status)
}

// Kind classifies the error.
func (e *Error) Kind() Kind {
	switch {
	case e.Status == 0:
		return KindTransient
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return KindAuth
	case e.Status == http.StatusNotFound:
		return KindNotFound
	case e.Status == http.StatusConflict:
		return KindConflict
	case e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout:
		return KindTransient
	}
	return KindOther
}

// KindOf classifies any error; errors that are not *Error (e.g. a cancelled context) are
// transient.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind()
	}
	return KindTransient
}

// IsAuth reports a 401 or 403.
func IsAuth(err error) bool { return err != nil && KindOf(err) == KindAuth }

// IsUnauthorized reports a 401 only (bad or expired credentials, as opposed to a missing role).
func IsUnauthorized(err error) bool { return StatusOf(err) == http.StatusUnauthorized }

// IsNotFound reports a 404.
func IsNotFound(err error) bool { return err != nil && KindOf(err) == KindNotFound }

// IsConflict reports a 409.
func IsConflict(err error) bool { return err != nil && KindOf(err) == KindConflict }

// IsTransient reports a 5xx, 429, timeout or transport failure.
func IsTransient(err error) bool { return err != nil && KindOf(err) == KindTransient }

// IsUnreachable reports a transport failure: no HTTP answer at all (DNS, refused, timeout).
func IsUnreachable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == 0
}

// StatusOf is the HTTP status of a failed call, 0 when there was none.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// MessageOf is the server's explanation of a failed call, else err.Error().
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message()
	}
	return err.Error()
}

// decodeProblem reads an error body: problem+json or JSON with the same fields is decoded,
// anything else becomes the detail (trimmed, bounded).
func decodeProblem(status int, contentType string, body []byte) Problem {
	p := Problem{}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/problem+json" || mt == "application/json" {
		if err := json.Unmarshal(body, &p); err == nil && (p.Title != "" || p.Detail != "") {
			if p.Status == 0 {
				p.Status = status
			}
			return p
		}
		p = Problem{}
	}
	text := strings.TrimSpace(string(body))
	if len(text) > 512 {
		text = text[:512]
	}
	p.Status, p.Title, p.Detail = status, http.StatusText(status), text
	return p
}
