package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// item is one entry of a lesson file: one audio file to make.
type item struct {
	Line   int      // where the entry starts in the file (1-based), for messages
	Key    string   // names the output file <key>.<format>; unique in the lesson
	Text   string   // what to say
	Voice  string   // "": the batch's -voice
	Speed  *float64 // nil: the batch's -speed
	Format string   // "": the batch's -format
}

// The lesson file kinds.
const (
	kindText = "txt"
	kindCSV  = "csv"
	kindJSON = "json"
)

// maxKeyLen bounds keys, so that "<batch name>:<key>:<hash>" stays within
// the server's 255-character Idempotency-Key and the file name within every
// file system's limit.
const maxKeyLen = 100

// maxProblems is how many input problems are listed before "and N more".
const maxProblems = 20

// lessonKind returns the kind of a lesson: kind when given (-input-format),
// otherwise from path's extension (.csv, .json; anything else is plain
// text).
func lessonKind(path, kind string) (string, error) {
	switch strings.ToLower(kind) {
	case kindText, "text":
		return kindText, nil
	case kindCSV:
		return kindCSV, nil
	case kindJSON:
		return kindJSON, nil
	case "":
	default:
		return "", usageErrorf("-input-format %q: want txt, csv or json", kind)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return kindCSV, nil
	case ".json":
		return kindJSON, nil
	}
	return kindText, nil
}

// parseLesson reads a lesson of the given kind and checks its entries:
// safe and unique keys, some text, speeds that are numbers, format names
// that can be file extensions. Every problem is reported with its line, in
// one usageError.
func parseLesson(r io.Reader, kind string) ([]item, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark, as spreadsheets write
	var (
		items    []item
		problems []string
	)
	switch kind {
	case kindText:
		items = parseText(data)
	case kindCSV:
		items, problems = parseCSV(data)
	case kindJSON:
		items, problems = parseJSON(data)
	default:
		return nil, fmt.Errorf("unknown lesson kind %q", kind)
	}
	problems = append(problems, checkItems(items)...)
	if len(problems) == 0 && len(items) == 0 {
		problems = append(problems, "the lesson has no items")
	}
	if len(problems) > 0 {
		if len(problems) > maxProblems {
			problems = append(problems[:maxProblems], fmt.Sprintf("and %d more problems", len(problems)-maxProblems))
		}
		return nil, &usageError{"the lesson has problems:\n  " + strings.Join(problems, "\n  ")}
	}
	return items, nil
}

// parseText reads plain text: one item per non-blank line, keyed by its
// line number padded to at least three digits (001, 002, ...), so that the
// files sort in the lesson's order and a line keeps its key when another
// line's text changes.
func parseText(data []byte) []item {
	lines := strings.Split(string(data), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	width := max(3, len(strconv.Itoa(len(lines))))
	var items []item
	for i, l := range lines {
		text := strings.TrimSpace(l)
		if text == "" {
			continue
		}
		items = append(items, item{Line: i + 1, Key: fmt.Sprintf("%0*d", width, i+1), Text: text})
	}
	return items
}

// csvColumns are the columns a CSV lesson may have; key and text are
// required.
var csvColumns = []string{"key", "text", "voice", "speed", "format"}

// parseCSV reads CSV with a header row naming its columns (key, text and
// optionally voice, speed, format, in any order). Empty voice, speed or
// format cells take the batch's flags.
func parseCSV(data []byte) ([]item, []string) {
	r := csv.NewReader(bytes.NewReader(data))
	header, err := r.Read()
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, []string{csvProblem(err)}
	}
	col := map[string]int{}
	var problems []string
	for i, name := range header {
		name = strings.ToLower(strings.TrimSpace(name))
		switch {
		case !slices.Contains(csvColumns, name):
			problems = append(problems, fmt.Sprintf("line 1: unknown column %q (the header names the columns: key, text and optionally voice, speed, format)", name))
		case col[name] != 0:
			problems = append(problems, fmt.Sprintf("line 1: column %q appears twice", name))
		default:
			col[name] = i + 1 // 0 means absent
		}
	}
	for _, need := range []string{"key", "text"} {
		if col[need] == 0 {
			problems = append(problems, fmt.Sprintf("line 1: the header has no %q column (want key,text[,voice,speed,format])", need))
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	cell := func(rec []string, name string) string {
		if i := col[name]; i > 0 {
			return rec[i-1]
		}
		return ""
	}
	var items []item
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			problems = append(problems, csvProblem(err))
			var pe *csv.ParseError
			if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
				continue // the reader goes on after a short or long row
			}
			break
		}
		line, _ := r.FieldPos(0)
		it := item{Line: line, Key: strings.TrimSpace(cell(rec, "key")), Text: strings.TrimSpace(cell(rec, "text")),
			Voice: strings.TrimSpace(cell(rec, "voice")), Format: strings.TrimSpace(cell(rec, "format"))}
		if s := strings.TrimSpace(cell(rec, "speed")); s != "" {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				problems = append(problems, fmt.Sprintf("line %d: speed %q is not a number", line, s))
				continue
			}
			it.Speed = &v
		}
		items = append(items, it)
	}
	return items, problems
}

func csvProblem(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Sprintf("line %d: %v", pe.Line, pe.Err)
	}
	return err.Error()
}

// jsonItem is one object of a JSON lesson.
type jsonItem struct {
	Key    json.RawMessage `json:"key"`
	Text   *string         `json:"text"`
	Voice  string          `json:"voice"`
	Speed  *float64        `json:"speed"`
	Format string          `json:"format"`
}

// parseJSON reads a JSON array of {"key","text","voice"?,"speed"?,"format"?}
// objects; unknown fields are mistakes. A key may be a string or a whole
// number.
func parseJSON(data []byte) ([]item, []string) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, []string{jsonProblem(data, dec.InputOffset(), err)}
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, []string{fmt.Sprintf("line %d: a JSON lesson is an array of {\"key\",\"text\",...} objects", lineAt(data, 0))}
	}
	var (
		items    []item
		problems []string
	)
	for dec.More() {
		start := startOf(data, dec.InputOffset())
		line := lineAt(data, start)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return items, append(problems, jsonProblem(data, start, err))
		}
		var ji jsonItem
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&ji); err != nil {
			problems = append(problems, fmt.Sprintf("line %d: %s", line, strings.TrimPrefix(err.Error(), "json: ")))
			continue
		}
		it := item{Line: line, Voice: strings.TrimSpace(ji.Voice), Speed: ji.Speed, Format: strings.TrimSpace(ji.Format)}
		if ji.Text != nil {
			it.Text = strings.TrimSpace(*ji.Text)
		}
		key, err := jsonKey(ji.Key)
		if err != nil {
			problems = append(problems, fmt.Sprintf("line %d: %v", line, err))
			continue
		}
		it.Key = key
		items = append(items, it)
	}
	if _, err := dec.Token(); err != nil {
		return items, append(problems, jsonProblem(data, dec.InputOffset(), err))
	}
	if _, err := dec.Token(); err != io.EOF {
		problems = append(problems, fmt.Sprintf("line %d: something follows the array", lineAt(data, startOf(data, dec.InputOffset()))))
	}
	return items, problems
}

// jsonKey returns a key given as a string or a whole number.
func jsonKey(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil // reported as an empty key by checkItems
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s), nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		if _, err := strconv.ParseUint(n.String(), 10, 64); err == nil {
			return n.String(), nil
		}
	}
	return "", fmt.Errorf("key %s: must be a string or a whole number", raw)
}

func jsonProblem(data []byte, offset int64, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		offset = se.Offset
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		offset = int64(len(data))
		err = errors.New("the JSON ends too early")
	}
	return fmt.Sprintf("line %d: %s", lineAt(data, offset), strings.TrimPrefix(err.Error(), "json: "))
}

// startOf skips the white space and the comma between array elements.
func startOf(data []byte, off int64) int64 {
	for off < int64(len(data)) && strings.IndexByte(" \t\r\n,", data[off]) >= 0 {
		off++
	}
	return off
}

// lineAt returns the 1-based line of the byte at off.
func lineAt(data []byte, off int64) int {
	off = min(max(off, 0), int64(len(data)))
	return bytes.Count(data[:off], []byte("\n")) + 1
}

// keyChars is what keys are made of: they become file names on every
// system, so no separators, no leading dot, no spaces or control
// characters.
var keyChars = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// formatChars is what a format name may contain, as it becomes the file
// extension. Whether the server knows the format is its to say.
var formatChars = regexp.MustCompile(`^[a-z0-9]+$`)

// checkKey says why key cannot name a file, or returns nil.
func checkKey(key string) error {
	switch {
	case key == "":
		return errors.New("the key is empty")
	case strings.ContainsAny(key, `/\`):
		return fmt.Errorf("key %q contains a path separator: keys name files inside the output folder", key)
	case key == "." || key == ".." || strings.HasPrefix(key, "."):
		return fmt.Errorf("key %q starts with a dot: keys name plain files inside the output folder", key)
	case len(key) > maxKeyLen:
		return fmt.Errorf("key %q is longer than %d characters", key, maxKeyLen)
	case !keyChars.MatchString(key):
		return fmt.Errorf("key %q: use letters, digits, '.', '_' and '-' only, starting with a letter or digit", key)
	}
	return nil
}

// checkItems checks what every kind of lesson must satisfy.
func checkItems(items []item) []string {
	var problems []string
	seen := map[string]item{}
	for i := range items {
		it := &items[i]
		if err := checkKey(it.Key); err != nil {
			problems = append(problems, fmt.Sprintf("line %d: %v", it.Line, err))
			continue
		}
		// Case-insensitively: on macOS and Windows "Intro" and "intro"
		// are one file.
		fold := strings.ToLower(it.Key)
		if prev, dup := seen[fold]; dup {
			problems = append(problems, fmt.Sprintf("line %d: key %q repeats the key %q of line %d", it.Line, it.Key, prev.Key, prev.Line))
			continue
		}
		seen[fold] = *it
		if it.Text == "" {
			problems = append(problems, fmt.Sprintf("line %d: key %q has no text", it.Line, it.Key))
		}
		it.Format = strings.ToLower(it.Format)
		if it.Format != "" && !formatChars.MatchString(it.Format) {
			problems = append(problems, fmt.Sprintf("line %d: format %q is not a format name (mp3, wav, opus, aac, flac, pcm)", it.Line, it.Format))
		}
	}
	return problems
}
