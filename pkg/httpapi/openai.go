package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v5"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// The OpenAI-compatible endpoints let the official OpenAI SDKs (and tools
// built on them) use this service unchanged: point the client's base URL at
// <service>/v1. POST /v1/audio/speech is synchronous, as OpenAI's is: it
// submits an ordinary job on the interactive queue, waits for it and answers
// with the audio bytes. Errors keep this API's {"error":{"code","message"}}
// shape, which the SDKs surface as the exception's message and code.
//
// Request fields: model is any string (one model serves them all);
// instructions is accepted and ignored (Kokoro takes no style prompt);
// stream_format may be "audio" (the whole file is sent when ready), not
// "sse"; speed must be within this service's 0.5–2.0, not OpenAI's
// 0.25–4.0; other fields are ignored. The job's id comes back in X-Job-ID,
// so the job stays visible under /api/jobs. The wait is bounded (504 after
// defaultSpeechTimeout); when the client leaves or the wait runs out, the job
// is canceled so that no worker spends time on audio nobody will receive.

const (
	// defaultSpeechTimeout bounds how long POST /v1/audio/speech waits for
	// its job; the request's own context bounds it too.
	defaultSpeechTimeout = 120 * time.Second
	// speechPoll is how often the waiting handler reads the job.
	speechPoll = 50 * time.Millisecond
	// cancelTimeout bounds the cancel sent when the audio is no longer wanted.
	cancelTimeout = 5 * time.Second
	// modelsCreated is the "created" time shown for every model: the
	// release of Kokoro-82M v1.0 (2025-01-27).
	modelsCreated = 1737936000
)

// openAIModels are the model ids GET /v1/models lists. The speech endpoint
// accepts any model name: there is one model behind it.
func openAIModels() []string { return []string{"kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"} }

// openAIVoice maps OpenAI's voice names to Kokoro v1.0 voices: the Kokoro
// voice of the same name where there is one (alloy, echo, fable, onyx,
// nova), Kokoro-FastAPI's choice where it exists in v1.0 and has the OpenAI
// voice's gender (coral, shimmer), otherwise an American voice of that
// gender graded C+ or better. Kokoro ids and blends pass through unchanged.
func openAIVoice(name string) (string, bool) {
	switch name {
	case "alloy":
		return "af_alloy", true
	case "ash":
		return "am_michael", true
	case "ballad":
		return "bm_george", true
	case "coral":
		return "bf_emma", true
	case "echo":
		return "am_echo", true
	case "fable":
		return "bm_fable", true
	case "onyx":
		return "am_onyx", true
	case "nova":
		return "af_nova", true
	case "sage":
		return "af_sarah", true
	case "shimmer":
		return "af_sky", true
	case "verse":
		return "am_puck", true
	}
	return "", false
}

// mapVoice replaces OpenAI voice names by their Kokoro voices, also inside a
// blend ("nova(2)+alloy"); everything else is left for validation.
func mapVoice(spec string) (string, bool) {
	parts := strings.Split(spec, "+")
	mapped := false
	for i, p := range parts {
		id, weight := p, ""
		if open := strings.IndexByte(p, '('); open >= 0 {
			id, weight = p[:open], p[open:]
		}
		if v, ok := openAIVoice(strings.ToLower(strings.TrimSpace(id))); ok {
			parts[i], mapped = v+weight, true
		}
	}
	return strings.Join(parts, "+"), mapped
}

// speechRequest is the body of POST /v1/audio/speech, OpenAI's shape.
type speechRequest struct {
	Model          string
	Input          *string
	Voice          string
	ResponseFormat string
	Speed          *float64
	Instructions   string
	StreamFormat   string
}

// decodeSpeech reads OpenAI's request body. Unlike POST /api/tts, unknown
// fields are ignored: the SDKs send fields this service has no use for.
func decodeSpeech(c *echo.Context) (speechRequest, error) {
	var raw map[string]json.RawMessage
	if err := decodeJSON(c, &raw); err != nil {
		return speechRequest{}, err
	}
	if raw == nil { // the body was null
		return speechRequest{}, tts.Errorf(tts.EMALFORMED, "the request body must be a JSON object")
	}
	var r speechRequest
	for _, f := range []struct {
		name string
		dst  any
		kind string
	}{
		{"model", &r.Model, "string"}, {"input", &r.Input, "string"}, {"voice", &r.Voice, "string"},
		{"response_format", &r.ResponseFormat, "string"}, {"speed", &r.Speed, "number"},
		{"instructions", &r.Instructions, "string"}, {"stream_format", &r.StreamFormat, "string"},
	} {
		if v, ok := raw[f.name]; ok {
			if err := json.Unmarshal(v, f.dst); err != nil {
				return speechRequest{}, tts.Errorf(tts.EINVALID, "%s: must be a %s", f.name, f.kind)
			}
		}
	}
	return r, nil
}

// openAIFieldNames renames the domain's field names in a validation message
// to the ones the OpenAI client sent.
func openAIFieldNames(err error, voice, mappedTo string) error {
	var te *tts.Error
	if !errors.As(err, &te) {
		return err
	}
	msg := te.Message
	for _, r := range [][2]string{{"text:", "input:"}, {"format:", "response_format:"}} {
		if strings.HasPrefix(msg, r[0]) {
			msg = r[1] + strings.TrimPrefix(msg, r[0])
		}
	}
	if mappedTo != "" && strings.HasPrefix(msg, "voice:") {
		msg += fmt.Sprintf(" (the OpenAI voice %q maps to %q)", clipText(voice), mappedTo)
	}
	if msg == te.Message {
		return err
	}
	return &tts.Error{Code: te.Code, Message: msg, Err: te.Err}
}

func clipText(s string) string {
	if r := []rune(strings.ToValidUTF8(s, "?")); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}

// routesOpenAI registers the OpenAI-compatible endpoints under /v1.
func (s *Server) routesOpenAI(g *echo.Group) {
	g.POST("/audio/speech", s.speech)
	g.GET("/audio/voices", s.openAIVoices)
	g.GET("/models", s.openAIModelList)
	g.GET("/models/:model", s.openAIModel)
}

// speechTimeout is how long the speech endpoint waits for a job.
func (s *Server) speechTimeout() time.Duration { return s.cfg.SpeechTimeout }

func (s *Server) speech(c *echo.Context) error {
	req, err := decodeSpeech(c)
	if err != nil {
		return err
	}
	if req.Input == nil {
		return tts.Errorf(tts.EINVALID, "input: is required (1 to %d characters)", s.cfg.Jobs.MaxTextChars())
	}
	switch req.StreamFormat {
	case "", "audio":
	case "sse":
		return tts.Errorf(tts.EUNSUPPORTED, `stream_format: "sse" is not supported; use "audio"`)
	default:
		return tts.Errorf(tts.EINVALID, `stream_format: must be "audio"`)
	}
	voice, mapped := mapVoice(req.Voice)
	mappedTo := ""
	if mapped {
		mappedTo = voice
	}
	ctx := c.Request().Context()
	refund, err := s.charge(ctx, utf8.RuneCountInString(*req.Input))
	if err != nil {
		return err
	}
	job, _, err := s.cfg.Jobs.Submit(ctx, tts.Request{
		Text: *req.Input, Voice: voice, Speed: req.Speed, Format: req.ResponseFormat, Queue: tts.QueueInteractive,
	}, "")
	if err != nil {
		refund()
		return openAIFieldNames(err, req.Voice, mappedTo)
	}
	reqID := c.Response().Header().Get(echo.HeaderXRequestID)
	log := s.cfg.Logger.With("request_id", reqID, "job_id", job.ID)
	c.Response().Header().Set("X-Job-ID", job.ID)

	waitCtx, cancel := context.WithTimeout(ctx, s.speechTimeout())
	defer cancel()
	done, err := s.cfg.Jobs.Wait(waitCtx, job.ID, speechPoll)
	if err != nil {
		// Nobody will take this audio: stop the work.
		s.cancelJob(ctx, job.ID, log)
		switch {
		case errors.Is(ctx.Err(), context.Canceled):
			log.Info("client went away before its speech was ready; job canceled")
			// 499 (client closed request) is for the log and metrics only.
			return c.NoContent(499)
		case errors.Is(err, context.DeadlineExceeded):
			log.Warn("speech not ready in time; job canceled", "timeout", s.speechTimeout())
			return s.speechError(c, http.StatusGatewayTimeout, "timeout",
				fmt.Sprintf("the audio was not ready in time; job %s was canceled", job.ID))
		}
		return err
	}
	switch done.Status {
	case tts.StatusSucceeded:
	case tts.StatusFailed:
		msg := done.Error
		if msg == "" {
			msg = "synthesis failed"
		}
		return s.speechError(c, http.StatusBadGateway, "synthesis_failed", msg)
	default:
		return s.speechError(c, http.StatusConflict, tts.ECANCELED,
			fmt.Sprintf("job %s was canceled before its audio was ready", job.ID))
	}
	res, err := s.cfg.Jobs.Audio(ctx, job.ID, false)
	if err != nil {
		return err
	}
	defer res.Object.Close()
	h := c.Response().Header()
	if n := res.Object.Info().Size; n > 0 {
		h.Set(echo.HeaderContentLength, strconv.FormatInt(n, 10))
	}
	h.Set("Cache-Control", "no-store")
	return c.Stream(http.StatusOK, res.Job.Audio.ContentType, res.Object)
}

// cancelJob cancels a job whose audio is no longer wanted, even when ctx is
// already canceled (the client left).
func (s *Server) cancelJob(ctx context.Context, id string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
	defer cancel()
	if _, err := s.cfg.Jobs.Cancel(ctx, id); err != nil && tts.ErrorCode(err) != tts.ECONFLICT {
		log.Warn("could not cancel a job nobody waits for", "err", err)
	}
}

// speechError writes an error of the speech endpoint that has no domain
// code of its own. X-Should-Retry tells the OpenAI SDKs not to resubmit: the
// job failed for good, or the service is too slow right now.
func (s *Server) speechError(c *echo.Context, status int, code, msg string) error {
	c.Response().Header().Set("X-Should-Retry", "false")
	return c.JSON(status, errorBody{Error: errorDetail{Code: code, Message: msg,
		RequestID: c.Response().Header().Get(echo.HeaderXRequestID)}})
}

// openAIVoices answers GET /v1/audio/voices in Kokoro-FastAPI's shape.
func (s *Server) openAIVoices(c *echo.Context) error {
	vs := s.cfg.Jobs.Voices(c.Request().Context())
	ids := make([]string, len(vs))
	for i, v := range vs {
		ids[i] = v.ID
	}
	return c.JSON(http.StatusOK, map[string][]string{"voices": ids})
}

// modelView is a model in OpenAI's list shape.
type modelView struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func modelOf(id string) modelView {
	return modelView{ID: id, Object: "model", Created: modelsCreated, OwnedBy: "kokoro-tts"}
}

func (s *Server) openAIModelList(c *echo.Context) error {
	out := struct {
		Object string      `json:"object"`
		Data   []modelView `json:"data"`
	}{Object: "list"}
	for _, id := range openAIModels() {
		out.Data = append(out.Data, modelOf(id))
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) openAIModel(c *echo.Context) error {
	id := c.Param("model")
	for _, m := range openAIModels() {
		if m == id {
			return c.JSON(http.StatusOK, modelOf(id))
		}
	}
	return tts.Errorf(tts.ENOTFOUND, "no model %q; GET /v1/models lists them", clipText(id))
}
