package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func ptr(f float64) *float64 { return &f }

func TestParseText(t *testing.T) {
	// A byte order mark, CRLF line ends, blank lines and padding spaces.
	in := "\xef\xbb\xbfGood morning.\r\n\r\n  Open your books.  \n\t\nPage ten.\n"
	items, err := parseLesson(strings.NewReader(in), kindText)
	if err != nil {
		t.Fatal(err)
	}
	want := []item{
		{Line: 1, Key: "001", Text: "Good morning."},
		{Line: 3, Key: "003", Text: "Open your books."},
		{Line: 5, Key: "005", Text: "Page ten."},
	}
	if !reflect.DeepEqual(items, want) {
		t.Fatalf("got %+v\nwant %+v", items, want)
	}

	// Keys widen with the file so that they still sort.
	var b strings.Builder
	for i := range 1200 {
		fmt.Fprintf(&b, "line %d\n", i+1)
	}
	items, err = parseLesson(strings.NewReader(b.String()), kindText)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1200 || items[0].Key != "0001" || items[1199].Key != "1200" || items[1199].Text != "line 1200" {
		t.Fatalf("got %d items, first %+v, last %+v", len(items), items[0], items[len(items)-1])
	}
}

func TestParseCSV(t *testing.T) {
	in := "Text, KEY ,format,speed,voice\n" +
		"\"Hello, class.\",intro,WAV,0.9,bf_emma\n" +
		"What is this?,q1,,,\n" +
		"\"Two\nlines\",q2,opus,1.5,am_adam\n"
	items, err := parseLesson(strings.NewReader(in), kindCSV)
	if err != nil {
		t.Fatal(err)
	}
	want := []item{
		{Line: 2, Key: "intro", Text: "Hello, class.", Voice: "bf_emma", Speed: ptr(0.9), Format: "wav"},
		{Line: 3, Key: "q1", Text: "What is this?"},
		{Line: 4, Key: "q2", Text: "Two\nlines", Voice: "am_adam", Speed: ptr(1.5), Format: "opus"},
	}
	if !reflect.DeepEqual(items, want) {
		t.Fatalf("got %+v\nwant %+v", items, want)
	}

	// Only the required columns.
	items, err = parseLesson(strings.NewReader("key,text\na,Alpha\n"), kindCSV)
	if err != nil || len(items) != 1 || items[0].Key != "a" || items[0].Text != "Alpha" || items[0].Speed != nil {
		t.Fatalf("got %+v, %v", items, err)
	}
}

func TestParseJSON(t *testing.T) {
	in := `[
  {"key": "intro", "text": "Hello.", "voice": "bf_emma", "speed": 0.9, "format": "WAV"},
  {"key": 2, "text": "  Second.  "},
  {
    "text": "Third.",
    "key": "c"
  }
]`
	items, err := parseLesson(strings.NewReader(in), kindJSON)
	if err != nil {
		t.Fatal(err)
	}
	want := []item{
		{Line: 2, Key: "intro", Text: "Hello.", Voice: "bf_emma", Speed: ptr(0.9), Format: "wav"},
		{Line: 3, Key: "2", Text: "Second."},
		{Line: 4, Key: "c", Text: "Third."},
	}
	if !reflect.DeepEqual(items, want) {
		t.Fatalf("got %+v\nwant %+v", items, want)
	}
}

// TestLessonProblems is the catalogue of bad input: each problem names its
// line, and nothing is accepted when any is found.
func TestLessonProblems(t *testing.T) {
	for _, tc := range []struct {
		name, kind, in string
		want           []string // each must appear in the error
	}{
		{"empty text file", kindText, "\n  \n", []string{"the lesson has no items"}},
		{"empty CSV", kindCSV, "", []string{"the lesson has no items"}},
		{"header only", kindCSV, "key,text\n", []string{"the lesson has no items"}},
		{"empty JSON array", kindJSON, "[]", []string{"the lesson has no items"}},

		{"path traversal", kindCSV, "key,text\n../../etc/passwd,x\n", []string{`line 2: key "../../etc/passwd" contains a path separator`}},
		{"separator", kindCSV, "key,text\nunit/1,x\n", []string{`line 2: key "unit/1" contains a path separator`}},
		{"backslash", kindCSV, "key,text\n..\\x,x\n", []string{`line 2: key "..\\x" contains a path separator`}},
		{"dot dot", kindCSV, "key,text\n..,x\n", []string{`line 2: key ".." starts with a dot`}},
		{"dot", kindJSON, `[{"key":".","text":"x"}]`, []string{`line 1: key "." starts with a dot`}},
		{"hidden", kindCSV, "key,text\n.bashrc,x\n", []string{`line 2: key ".bashrc" starts with a dot`}},
		{"space", kindCSV, "key,text\nunit 1,x\n", []string{`line 2: key "unit 1": use letters, digits`}},
		{"control character", kindJSON, `[{"key":"a\u0000b","text":"x"}]`, []string{`line 1: key "a\x00b": use letters`}},
		{"absolute", kindJSON, `[{"key":"/tmp/x","text":"x"}]`, []string{`key "/tmp/x" contains a path separator`}},
		{"too long", kindCSV, "key,text\n" + strings.Repeat("k", 101) + ",x\n", []string{"is longer than 100 characters"}},
		{"empty key", kindCSV, "key,text\n,x\n", []string{"line 2: the key is empty"}},
		{"missing key", kindJSON, `[{"text":"x"}]`, []string{"line 1: the key is empty"}},

		{"duplicate", kindCSV, "key,text\na,x\nb,y\na,z\n", []string{`line 4: key "a" repeats the key "a" of line 2`}},
		{"duplicate ignoring case", kindJSON, "[\n{\"key\":\"Intro\",\"text\":\"x\"},\n{\"key\":\"intro\",\"text\":\"y\"}]",
			[]string{`line 3: key "intro" repeats the key "Intro" of line 2`}},
		{"duplicate number and string", kindJSON, `[{"key":7,"text":"x"},{"key":"7","text":"y"}]`, []string{`key "7" repeats`}},

		{"no text", kindCSV, "key,text\na,  \n", []string{`line 2: key "a" has no text`}},
		{"no text JSON", kindJSON, `[{"key":"a"}]`, []string{`line 1: key "a" has no text`}},
		{"bad speed", kindCSV, "key,text,speed\na,x,fast\nb,y,NaN\n", []string{`line 2: speed "fast" is not a number`, `line 3: speed "NaN" is not a number`}},
		{"bad format", kindCSV, "key,text,format\na,x,../mp3\n", []string{`line 2: format "../mp3" is not a format name`}},

		{"unknown column", kindCSV, "key,text,lang\na,x,en\n", []string{`line 1: unknown column "lang"`}},
		{"no key column", kindCSV, "id,text\n", []string{`unknown column "id"`, `the header has no "key" column`}},
		{"twice", kindCSV, "key,text,key\n", []string{`line 1: column "key" appears twice`}},
		{"field count", kindCSV, "key,text\na,x\nb,y,extra\nc,z\n", []string{"line 3: wrong number of fields"}},
		{"bare quote", kindCSV, "key,text\na,x\"y\n", []string{"line 2:", "bare \""}},

		{"not an array", kindJSON, `{"key":"a","text":"x"}`, []string{"line 1: a JSON lesson is an array"}},
		{"unknown field", kindJSON, "[\n{\"key\":\"a\",\"text\":\"x\",\"lang\":\"en\"}]", []string{`line 2: unknown field "lang"`}},
		{"key type", kindJSON, `[{"key":true,"text":"x"}]`, []string{"key true: must be a string or a whole number"}},
		{"fraction key", kindJSON, `[{"key":1.5,"text":"x"}]`, []string{"key 1.5: must be a string or a whole number"}},
		{"wrong type", kindJSON, `[{"key":"a","text":"x","speed":"fast"}]`, []string{"line 1:", "speed"}},
		{"truncated", kindJSON, "[\n{\"key\":\"a\",\"text\":\"x\"},\n{\"key\":", []string{"line 3:"}},
		{"syntax", kindJSON, "[\n{\"key\":\"a\",\"text\":\"x\"}\n{\"key\":\"b\"}]", []string{"line 3:"}},
		{"trailing data", kindJSON, "[{\"key\":\"a\",\"text\":\"x\"}]\n[]", []string{"line 2: something follows the array"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, err := parseLesson(strings.NewReader(tc.in), tc.kind)
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("want a usage error, got items %+v, err %v", items, err)
			}
			if items != nil {
				t.Fatalf("items returned with an error: %+v", items)
			}
			if exitCode(err) != exitUsage {
				t.Fatalf("exit code %d", exitCode(err))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestLessonProblemsAllListed: every problem is reported, up to a bound.
func TestLessonProblemsAllListed(t *testing.T) {
	var b strings.Builder
	b.WriteString("key,text\n")
	for i := range 30 {
		fmt.Fprintf(&b, "../k%d,x\n", i)
	}
	_, err := parseLesson(strings.NewReader(b.String()), kindCSV)
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	if strings.Count(msg, "path separator") != maxProblems || !strings.Contains(msg, "and 10 more problems") || !strings.Contains(msg, "line 21:") {
		t.Fatalf("error: %s", msg)
	}
}

func TestLessonKind(t *testing.T) {
	for _, tc := range []struct{ path, flag, want string }{
		{"unit1.txt", "", kindText},
		{"unit1", "", kindText},
		{"dir/Unit1.CSV", "", kindCSV},
		{"unit1.json", "", kindJSON},
		{"unit1.txt", "json", kindJSON},
		{"-", "csv", kindCSV},
	} {
		got, err := lessonKind(tc.path, tc.flag)
		if err != nil || got != tc.want {
			t.Errorf("lessonKind(%q, %q) = %q, %v; want %q", tc.path, tc.flag, got, err, tc.want)
		}
	}
	if _, err := lessonKind("a.txt", "yaml"); exitCode(err) != exitUsage {
		t.Errorf("-input-format yaml: %v", err)
	}
}

// FuzzParseLesson: whatever the input, parsing does not panic, and every
// accepted key names a plain file inside the output folder, once.
func FuzzParseLesson(f *testing.F) {
	f.Add(kindText, "hello\n\nworld\n")
	f.Add(kindCSV, "key,text,voice,speed,format\nintro,\"Hi, all\",bf_emma,0.9,wav\n")
	f.Add(kindCSV, "key,text\n../x,y\n")
	f.Add(kindJSON, `[{"key":"a","text":"x"},{"key":2,"text":"y","speed":1.5}]`)
	f.Add(kindJSON, `[{"key":"..","text":"x"}]`)
	f.Fuzz(func(t *testing.T, kind, in string) {
		switch kind {
		case kindText, kindCSV, kindJSON:
		default:
			return
		}
		items, err := parseLesson(strings.NewReader(in), kind)
		if err != nil {
			if len(err.Error()) > 64<<10 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		seen := map[string]bool{}
		for _, it := range items {
			if checkKey(it.Key) != nil || it.Text == "" {
				t.Fatalf("accepted %+v", it)
			}
			dir := "/out"
			p := filepath.Join(dir, it.Key+".mp3")
			if filepath.Dir(p) != dir || seen[strings.ToLower(it.Key)] {
				t.Fatalf("key %q: file %q", it.Key, p)
			}
			seen[strings.ToLower(it.Key)] = true
		}
	})
}
