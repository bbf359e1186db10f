package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v5"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// requestID takes the caller's X-Request-ID when it is short and plain,
// otherwise makes one, and echoes it in the response.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !validRequestID.MatchString(id) {
			id = newRequestID()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

// submitBody is the JSON body of POST /api/tts.
type submitBody struct {
	Text   *string  `json:"text"`
	Voice  string   `json:"voice"`
	Speed  *float64 `json:"speed"`
	Format string   `json:"format"`
	Queue  string   `json:"queue"`
	// CallbackURL receives the terminal event (webhook).
	CallbackURL string `json:"callback_url"`
	BitrateKbps *int   `json:"bitrate_kbps"`
	SampleRate  *int   `json:"sample_rate"`
}

// decodeJSON reads a JSON body strictly: JSON content type, valid UTF-8,
// one object, no unknown fields. Errors name what is wrong.
func decodeJSON(c *echo.Context, dst any) error {
	ct := c.Request().Header.Get(echo.HeaderContentType)
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != echo.MIMEApplicationJSON {
		return tts.Errorf(tts.EMEDIATYPE, "Content-Type must be application/json")
	}
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || echo.StatusCode(err) == http.StatusRequestEntityTooLarge {
			return tts.Errorf(tts.ETOOLARGE, "the request body is too large")
		}
		return tts.Wrap(tts.EMALFORMED, err, "could not read the request body")
	}
	if !utf8.Valid(body) {
		return tts.Errorf(tts.EMALFORMED, "the request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var (
			syn *json.SyntaxError
			typ *json.UnmarshalTypeError
		)
		switch {
		case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return tts.Errorf(tts.EMALFORMED, "the request body is not valid JSON")
		case errors.As(err, &typ):
			if typ.Field == "" {
				return tts.Errorf(tts.EMALFORMED, "the request body must be a JSON object")
			}
			return tts.Errorf(tts.EINVALID, "%s: must be a %s", typ.Field, jsonKind(typ.Type.Kind().String()))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return tts.Errorf(tts.EINVALID, "%s: unknown field", strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`))
		}
		return tts.Errorf(tts.EINVALID, "the request body could not be decoded: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		return tts.Errorf(tts.EMALFORMED, "the request body must hold exactly one JSON object")
	}
	// encoding/json keeps the last of duplicate keys: refuse them instead,
	// so that no two readers of one body can see different requests.
	if k := duplicateKey(body); k != "" {
		return tts.Errorf(tts.EMALFORMED, "the request body repeats the key %q", clipID(k))
	}
	return nil
}

// duplicateKey returns the first key that appears twice in one object of a
// valid JSON document, comparing keys as encoding/json matches fields
// (ignoring case), or "" when there is none.
func duplicateKey(body []byte) string {
	type object struct {
		keys      map[string]bool
		expectKey bool
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var stack []*object // nil entries are arrays
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		var top *object
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if top != nil {
					top.expectKey = true // this value is the member's whole value
				}
				var o *object
				if d == '{' {
					o = &object{keys: map[string]bool{}, expectKey: true}
				}
				stack = append(stack, o)
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if top == nil {
			continue
		}
		if k, ok := tok.(string); ok && top.expectKey {
			folded := strings.ToLower(k)
			if top.keys[folded] {
				return k
			}
			top.keys[folded] = true
			top.expectKey = false
			continue
		}
		top.expectKey = true
	}
}

func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "float"), strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"):
		return "number"
	case k == "ptr":
		return "string"
	}
	return k
}

func (s *Server) submit(c *echo.Context) error {
	var b submitBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	if b.Text == nil {
		return tts.Errorf(tts.EINVALID, "text: is required (1 to %d characters)", s.cfg.Jobs.MaxTextChars())
	}
	key := c.Request().Header.Get("Idempotency-Key")
	refund, err := s.charge(c.Request().Context(), utf8.RuneCountInString(*b.Text))
	if err != nil {
		return err
	}
	job, created, err := s.cfg.Jobs.Submit(c.Request().Context(), tts.Request{
		Text: *b.Text, Voice: b.Voice, Speed: b.Speed, Format: b.Format, Queue: b.Queue, CallbackURL: b.CallbackURL,
		BitrateKbps: b.BitrateKbps, SampleRate: b.SampleRate,
	}, key)
	if err != nil || !created {
		refund()
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, jobPath(job.ID))
	if !created {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return c.JSON(http.StatusAccepted, viewOf(job))
}

func (s *Server) get(c *echo.Context) error {
	job, err := s.cfg.Jobs.Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewOf(job))
}

func (s *Server) cancel(c *echo.Context) error {
	job, err := s.cfg.Jobs.Cancel(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, viewOf(job))
}

func (s *Server) list(c *echo.Context) error {
	q := c.QueryParams()
	limit := 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			return tts.Errorf(tts.EINVALID, "limit: must be a whole number from 1 to 100")
		}
		limit = n
	}
	list, next, err := s.cfg.Jobs.List(c.Request().Context(), q.Get("status"), q.Get("cursor"), limit)
	if err != nil {
		return err
	}
	out := listView{Jobs: make([]jobView, 0, len(list)), NextCursor: next}
	for _, j := range list {
		out.Jobs = append(out.Jobs, viewOf(j))
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) audio(c *echo.Context) error {
	res, err := s.cfg.Jobs.Audio(c.Request().Context(), c.Param("id"), c.QueryParam("redirect") != "0")
	if err != nil {
		return err
	}
	if res.URL != "" {
		return c.Redirect(http.StatusTemporaryRedirect, res.URL)
	}
	defer res.Object.Close()
	job := res.Job
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, job.Audio.ContentType)
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`inline; filename="%s.%s"`, job.ID, job.Format.Extension()))
	// A job's audio never changes once it exists.
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	h.Set("ETag", `"`+job.ID+`"`)
	mod := job.UpdatedAt
	if job.FinishedAt != nil {
		mod = *job.FinishedAt
	}
	http.ServeContent(c.Response(), c.Request(), "", mod, res.Object)
	return nil
}

func (s *Server) voices(c *echo.Context) error {
	v := s.cfg.Jobs.Voices(c.Request().Context())
	return c.JSON(http.StatusOK, map[string]any{"voices": v, "default": tts.DefaultVoice})
}

// healthView is the body of GET /api/health.
type healthView struct {
	Status string                 `json:"status"` // "ok" or "unavailable"
	Mode   string                 `json:"mode,omitempty"`
	Auth   string                 `json:"auth"` // "jwt" (log in first) or "open" (development)
	Checks map[string]checkResult `json:"checks"`
}

type checkResult struct {
	Status    string `json:"status"`
	LatencyMS int64  `json:"latency_ms"`
	Detail    any    `json:"detail,omitempty"`
	Error     string `json:"error,omitempty"`
}

func (s *Server) health(c *echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	out := healthView{Status: "ok", Mode: s.cfg.Mode, Auth: "open", Checks: map[string]checkResult{}}
	if s.cfg.Auth != nil {
		out.Auth = "jwt"
	}
	type result struct {
		name string
		r    checkResult
	}
	ch := make(chan result, len(s.cfg.Checks))
	for _, chk := range s.cfg.Checks {
		go func(chk Check) {
			start := time.Now()
			detail, err := chk.Check(ctx)
			r := checkResult{Status: "ok", LatencyMS: time.Since(start).Milliseconds(), Detail: detail}
			if err != nil {
				r.Status, r.Error = "down", tts.ErrorMessage(err)
				s.cfg.Logger.Warn("health check failed", "check", chk.Name, "err", err)
			}
			ch <- result{chk.Name, r}
		}(chk)
	}
	for range s.cfg.Checks {
		select {
		case r := <-ch:
			out.Checks[r.name] = r.r
			if r.r.Status != "ok" {
				out.Status = "unavailable"
			}
		case <-ctx.Done():
		}
	}
	for _, chk := range s.cfg.Checks {
		if _, ok := out.Checks[chk.Name]; !ok {
			out.Checks[chk.Name] = checkResult{Status: "down", Error: "no answer within the health check's time limit"}
			out.Status = "unavailable"
		}
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	if out.Status != "ok" {
		c.Response().Header().Set("Retry-After", "5")
		return c.JSON(http.StatusServiceUnavailable, out)
	}
	return c.JSON(http.StatusOK, out)
}
