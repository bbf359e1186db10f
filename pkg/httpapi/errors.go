package httpapi

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/kokorotts/kokoro-tts/pkg/auth"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// errorBody is the one error shape of the API.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

// statusOf maps a domain error code to its HTTP status: the only place where
// this mapping lives.
func statusOf(code string) int {
	switch code {
	case tts.EINVALID, tts.EUNSUPPORTED:
		return http.StatusUnprocessableEntity
	case tts.EMALFORMED:
		return http.StatusBadRequest
	case tts.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case tts.EMEDIATYPE:
		return http.StatusUnsupportedMediaType
	case tts.ENOTFOUND:
		return http.StatusNotFound
	case tts.ECONFLICT, tts.ENOTREADY:
		return http.StatusConflict
	case tts.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case auth.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case auth.EFORBIDDEN:
		return http.StatusForbidden
	case auth.ERATELIMITED:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// echoCodes names the errors Echo itself raises (routing, middleware).
var echoCodes = map[int]string{
	http.StatusBadRequest:            tts.EMALFORMED,
	http.StatusUnauthorized:          "unauthorized",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              tts.ENOTFOUND,
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusRequestEntityTooLarge: tts.ETOOLARGE,
	http.StatusUnsupportedMediaType:  tts.EMEDIATYPE,
	http.StatusTooManyRequests:       "rate_limited",
	http.StatusServiceUnavailable:    tts.EUNAVAILABLE,
	http.StatusRequestTimeout:        "timeout",
	// 431: the header block is over Config.MaxHeaderBytes.
	http.StatusRequestHeaderFieldsTooLarge: "headers_too_large",
}

// errorHandler writes every error as JSON. Internal details are logged with
// the request id and never sent.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(c *echo.Context, err error) {
		if r, _ := echo.UnwrapResponse(c.Response()); r != nil && r.Committed {
			return
		}
		reqID := c.Response().Header().Get(echo.HeaderXRequestID)
		var (
			status int
			detail errorDetail
		)
		// Echo's own errors (echo.ErrNotFound, the body limit's 413, ...)
		// carry a status but are not all *echo.HTTPError.
		echoStatus := echo.StatusCode(err)
		isEcho := echoStatus != 0
		if !isEcho && tts.ErrorCode(err) != tts.EINTERNAL {
			code := tts.ErrorCode(err)
			status, detail = statusOf(code), errorDetail{Code: code, Message: tts.ErrorMessage(err)}
			var te *tts.Error
			if errors.As(err, &te) && te.Err != nil {
				log.Warn("request failed", "request_id", reqID, "code", code, "err", err)
			}
		} else if isEcho && echoStatus != http.StatusInternalServerError {
			status = echoStatus
			code, ok := echoCodes[status]
			if !ok {
				code = strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_"))
			}
			msg := http.StatusText(status)
			if he := (*echo.HTTPError)(nil); errors.As(err, &he) && he.Message != "" {
				msg = he.Message
			}
			switch status {
			case http.StatusNotFound:
				msg = "no such endpoint: " + c.Request().Method + " " + c.Request().URL.Path
			case http.StatusMethodNotAllowed:
				msg = "method " + c.Request().Method + " is not allowed here"
			case http.StatusRequestEntityTooLarge:
				msg = "the request body is too large"
			}
			detail = errorDetail{Code: code, Message: msg}
		} else {
			status, detail = http.StatusInternalServerError, errorDetail{Code: tts.EINTERNAL, Message: "internal error; the request id identifies it in the server log"}
			log.Error("internal error", "request_id", reqID, "method", c.Request().Method, "path", c.Path(), "err", err)
		}
		if status == http.StatusServiceUnavailable {
			c.Response().Header().Set("Retry-After", "5")
		}
		var le *auth.LimitError
		if errors.As(err, &le) {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(le.RetryAfter.Seconds()))))
		}
		if status == http.StatusUnauthorized {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="kokoro-tts"`)
		}
		if status == http.StatusConflict && detail.Code == tts.ENOTREADY {
			c.Response().Header().Set("Retry-After", "1")
		}
		detail.RequestID = reqID
		if c.Request().Method == http.MethodHead {
			err = c.NoContent(status)
		} else {
			err = c.JSON(status, errorBody{Error: detail})
		}
		if err != nil {
			log.Warn("writing an error response failed", "request_id", reqID, "err", err)
		}
	}
}
