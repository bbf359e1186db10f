package espeak

import (
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestChunk(t *testing.T) {
	for _, tc := range []struct {
		name  string
		text  string
		limit int
		want  []string
	}{
		{"short", "  Hello world.  ", 100, []string{"Hello world."}},
		{"empty", " \n\t ", 10, nil},
		{"sentences packed", "One. Two. Three.", 10, []string{"One. Two.", "Three."}},
		{"question and exclamation", "Why? Because! Fine.", 14, []string{"Why? Because!", "Fine."}},
		{"closing quote", `He said "Stop." Then he left.`, 20, []string{`He said "Stop."`, "Then he left."}},
		{"decimals are not sentence ends", "Pi is 3.14 and e is 2.71 more or less", 26, []string{"Pi is 3.14 and e is 2.71", "more or less"}},
		{"clause", "alpha, beta gamma delta", 12, []string{"alpha,", "beta gamma", "delta"}},
		{"spaces", "aaaa bbbb cccc", 7, []string{"aaaa", "bbbb", "cccc"}},
		{"newline", "line one\nline two", 12, []string{"line one", "line two"}},
		{"hard cut", "abcdefghij", 4, []string{"abcd", "efgh", "ij"}},
		{"cjk full stops", "你好。世界。再见。", 4, []string{"你好。", "世界。", "再见。"}},
		{"cjk comma", "一二三、四五六七八", 5, []string{"一二三、", "四五六七八"}},
		{"devanagari danda", "नमस्ते दुनिया। आप कैसे हैं।", 16, []string{"नमस्ते दुनिया।", "आप कैसे हैं।"}},
		{"combining mark kept with base", "e\u0301e\u0301e\u0301", 3, []string{"e\u0301", "e\u0301", "e\u0301"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := chunk(tc.text, tc.limit)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("chunk(%q, %d) = %q, want %q", tc.text, tc.limit, got, tc.want)
			}
		})
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"Hello\x00world":          "Hello world",
		"tab\there\r\nnext":       "tab here\nnext",
		"co\u00adoperate":         "cooperate",           // soft hyphen
		"\u202eevil\u202c text":   "evil text",           // bidi override
		"say [[h@l'oU]] now":      "say [ [h@l'oU]] now", // raw phoneme input
		"[[[[":                    "[ [ [ [",
		"bad \xff\xfe utf8":       "bad   utf8", // one space per run of bad bytes
		"שלום 😀 ok":               "שלום 😀 ok",
		"<speak>hi</speak>":       "<speak>hi</speak>",
		"line\u2028sep\u0085next": "line\nsep next",
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}

// nonSpace returns s without its white space, bytes otherwise untouched.
func nonSpace(s string) string { return strings.Join(strings.FieldsFunc(s, unicode.IsSpace), "") }

func checkChunks(t *testing.T, text string, limit int, chunks []string) {
	t.Helper()
	for i, c := range chunks {
		if c == "" || strings.TrimSpace(c) != c {
			t.Fatalf("chunk %d %q is empty or untrimmed", i, c)
		}
		if n := utf8.RuneCountInString(c); n > limit {
			t.Fatalf("chunk %d has %d runes, limit %d", i, n, limit)
		}
	}
	// Strip each chunk on its own: joining first could fuse the bytes of
	// invalid UTF-8 on either side of a cut into a new (space) rune.
	var got strings.Builder
	for _, c := range chunks {
		got.WriteString(nonSpace(c))
	}
	if got, want := got.String(), nonSpace(text); got != want {
		t.Fatalf("chunks lose content:\n got %q\nwant %q", got, want)
	}
}

func FuzzChunk(f *testing.F) {
	for _, s := range []string{
		"", " ", "Hello world.", "One. Two. Three.", "a.b.c. d", `"Quoted." Next`,
		"你好。世界。", "नमस्ते दुनिया। आप कैसे हैं।", "e\u0301e\u0301e\u0301e\u0301",
		"\x00\x01\x02", "bad \xff utf8 \xe4\xbd", "[[h@l'oU]]", "<speak><break time=\"9s\"/></speak>",
		"👩‍👩‍👧 family", "\u202eRTL\u202c", strings.Repeat("word ", 300), strings.Repeat("x", 2500),
		"Mr. Smith, Dr. Jones; and — finally — Ms. Lee!\n\nNew paragraph…",
	} {
		for _, limit := range []int{1, 3, 10, 1000} {
			f.Add(s, limit)
		}
	}
	f.Fuzz(func(t *testing.T, s string, limit int) {
		if limit < 0 {
			limit = -limit
		}
		limit = 1 + limit%1500
		checkChunks(t, s, limit, chunk(s, limit))
		c := clean(s)
		if !utf8.ValidString(c) || strings.Contains(c, "[[") {
			t.Fatalf("clean(%q) = %q", s, c)
		}
		for _, r := range c {
			if r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) {
				t.Fatalf("clean(%q) keeps %U", s, r)
			}
		}
		checkChunks(t, c, limit, chunk(c, limit))
	})
}
