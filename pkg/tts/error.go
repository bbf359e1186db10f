package tts

import (
	"errors"
	"fmt"
)

// Error codes. They are part of the public API: clients see them in
// {"error":{"code":...}} and the HTTP layer maps each to one status.
const (
	EINVALID     = "invalid_request"     // a field failed validation (422)
	EMALFORMED   = "malformed_request"   // the body could not be decoded (400)
	ETOOLARGE    = "too_large"           // the body or text is too large (413)
	EMEDIATYPE   = "unsupported_media"   // wrong Content-Type (415)
	ENOTFOUND    = "not_found"           // no such resource (404)
	ECONFLICT    = "conflict"            // the request conflicts with the resource's state (409)
	ENOTREADY    = "not_ready"           // the resource exists but is not finished yet (409)
	EUNAVAILABLE = "unavailable"         // a dependency (database, Redis) is down (503)
	EINTERNAL    = "internal_error"      // anything else (500); its detail is never shown
	ECANCELED    = "canceled"            // the job was canceled while it ran
	EUNSUPPORTED = "unsupported_feature" // the running engine cannot honour the request (422)
)

// Error is the service's one error type. Code is machine readable, Message is
// safe to show to a client. Err, when set, is the internal cause: it is logged
// but never sent to a client.
type Error struct {
	Code    string
	Message string
	Err     error
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the given code and message that keeps err as its
// internal cause.
func Wrap(code string, err error, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of the first *Error in err's
// chain, or a generic message for any other error.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
