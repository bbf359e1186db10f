package phonemize

import (
	"math"
	"strconv"
	"strings"
)

// Normalize rewrites English text the way kokoro-js@1.2.1 does before it
// phonemizes: curly quotes become straight ones and brackets become «»,
// full-width CJK punctuation becomes ASCII, titles (Dr., Mr., Ms., Mrs.) and
// "etc." are expanded, times (7:45), years (1987, 1990s), money ($12.50,
// £10, $5 million), decimals (98.6), thousands separators and numeric ranges
// (9-11) are spelled out far enough for espeak-ng to read them as kokoro-js
// does, and dotted initialisms (U.S.A.) are hyphenated. espeak-ng reads the
// remaining digits itself.
//
// The steps run in kokoro-js's order and each one reproduces the matching
// regular expression's behaviour, including its quirks (for example only the
// first run of spaces is collapsed). Invalid UTF-8 is replaced by U+FFFD
// first. The result is never more than about six times as long as the input.
func Normalize(text string) string {
	s := strings.ToValidUTF8(text, "\uFFFD")
	s = punctReplacer.Replace(s)
	s = otherSpaceToSpace(s)
	s = collapseFirstSpaceRun(s)
	s = dropSpacesBetweenNewlines(s)
	s = expandTitles(s)
	s = expandEtc(s)
	s = rewriteYeah(s)
	s = splitNumbers(s)
	s = dropDigitCommas(s)
	s = flipMoney(s)
	s = pointNumbers(s)
	s = digitRanges(s)
	s = spaceDigitS(s)
	s = pluralInitialisms(s)
	s = xPossessive(s)
	s = hyphenateInitialismsBeforeLower(s)
	s = hyphenateLetterDots(s)
	return jsTrim(s)
}

// punctReplacer does kokoro-js's first character substitutions in one pass.
// kokoro-js maps « » to “ ” and then “ ” to ", so all four end as ".
var punctReplacer = strings.NewReplacer(
	"‘", "'", "’", "'",
	"«", `"`, "»", `"`, "“", `"`, "”", `"`,
	"(", "«", ")", "»",
	"、", ", ", "。", ". ", "！", "! ", "，", ", ", "：", ": ", "；", "; ", "？", "? ",
)

// jsSpace reports whether r is whitespace for a JavaScript regular expression
// (\s) and String.prototype.trim.
func jsSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

func jsTrim(s string) string { return strings.TrimFunc(s, jsSpace) }

// otherSpaceToSpace turns every whitespace character but space and newline
// into a space (/[^\S \n]/g).
func otherSpaceToSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if r != ' ' && r != '\n' && jsSpace(r) {
			return ' '
		}
		return r
	}, s)
}

// collapseFirstSpaceRun replaces the first run of two or more spaces with one
// space. kokoro-js's /  +/ has no g flag, so later runs stay.
func collapseFirstSpaceRun(s string) string {
	i := strings.Index(s, "  ")
	if i < 0 {
		return s
	}
	j := i
	for j < len(s) && s[j] == ' ' {
		j++
	}
	return s[:i+1] + s[j:]
}

// dropSpacesBetweenNewlines removes runs of spaces that sit between two
// newlines (/(?<=\n) +(?=\n)/g), so blank lines are exactly "\n\n".
func dropSpacesBetweenNewlines(s string) string {
	if !strings.Contains(s, "\n ") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] == ' ' && i > 0 && s[i-1] == '\n' {
			j := i
			for j < len(s) && s[j] == ' ' {
				j++
			}
			if j < len(s) && s[j] == '\n' {
				i = j
				continue
			}
			b.WriteString(s[i:j])
			i = j
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// Byte classes. Every test is on ASCII, so scanning bytes of UTF-8 is exact:
// the bytes of a multi-byte character are never ASCII.
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isUpper(c byte) bool  { return 'A' <= c && c <= 'Z' }
func isLower(c byte) bool  { return 'a' <= c && c <= 'z' }
func isLetter(c byte) bool { return isUpper(c) || isLower(c) }

// isWord is JavaScript's \w without the u flag.
func isWord(c byte) bool { return isLetter(c) || isDigit(c) || c == '_' }

// at returns s[i], or 0 when i is out of range (0 is in no class).
func at(s string, i int) byte {
	if i < 0 || i >= len(s) {
		return 0
	}
	return s[i]
}

// boundary reports a JavaScript \b between s[i-1] and s[i].
func boundary(s string, i int) bool { return isWord(at(s, i-1)) != isWord(at(s, i)) }

// spaceUpperAt reports whether s[i:] starts with a space and an ASCII capital
// (the lookahead (?= [A-Z])).
func spaceUpperAt(s string, i int) bool { return at(s, i) == ' ' && isUpper(at(s, i+1)) }

// expandTitles expands Dr., Mr., Ms. and Mrs. Title-case forms always expand
// (except Dr., which needs a following capitalised word, as all-caps forms
// do): "Dr. Smith" → "Doctor Smith", "Mrs." → "Mrs".
func expandTitles(s string) string {
	type title struct {
		mixed, upper, with string
		mixedNeedsName     bool
	}
	titles := []title{
		{"Dr.", "DR.", "Doctor", true},
		{"Mr.", "MR.", "Mister", false},
		{"Ms.", "MS.", "Miss", false},
		{"Mrs.", "MRS.", "Mrs", false},
	}
	for _, t := range titles {
		if !strings.Contains(s, t.mixed) && !strings.Contains(s, t.upper) {
			continue
		}
		var b strings.Builder
		last := 0
		for i := 0; i < len(s); i++ {
			if !boundary(s, i) {
				continue
			}
			n := 0
			switch {
			case strings.HasPrefix(s[i:], t.mixed):
				n = len(t.mixed)
				if t.mixedNeedsName && !spaceUpperAt(s, i+n) {
					n = 0
				}
			case strings.HasPrefix(s[i:], t.upper):
				n = len(t.upper)
				if !spaceUpperAt(s, i+n) {
					n = 0
				}
			}
			if n > 0 {
				b.WriteString(s[last:i])
				b.WriteString(t.with)
				last = i + n
				i += n - 1
			}
		}
		b.WriteString(s[last:])
		s = b.String()
	}
	return s
}

// expandEtc drops the dot of "etc." (any case) unless a word follows, where
// the dot may end a sentence (/\betc\.(?! [A-Z])/gi → "etc").
func expandEtc(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; i+4 <= len(s); i++ {
		if !boundary(s, i) || !asciiEqualFold(s[i:i+4], "etc.") {
			continue
		}
		if at(s, i+4) == ' ' && isLetter(at(s, i+5)) {
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString("etc")
		last = i + 4
		i += 3
	}
	b.WriteString(s[last:])
	return b.String()
}

// rewriteYeah spells "yeah" and "yea" (any case) as "ye'a", keeping the case
// of the y (/\b(y)eah?\b/gi → "$1e'a").
func rewriteYeah(s string) string {
	if !strings.ContainsAny(s, "yY") {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; i+3 <= len(s); i++ {
		if (s[i] != 'y' && s[i] != 'Y') || !boundary(s, i) || !asciiEqualFold(s[i+1:i+3], "ea") {
			continue
		}
		end := i + 3
		if end < len(s) && (s[end] == 'h' || s[end] == 'H') && !isWord(at(s, end+1)) {
			end++
		} else if isWord(at(s, end)) {
			continue
		}
		b.WriteString(s[last:i])
		b.WriteByte(s[i])
		b.WriteString("e'a")
		last = end
		i = end - 1
	}
	b.WriteString(s[last:])
	return b.String()
}

// digitsEnd returns the end of the run of ASCII digits starting at i.
func digitsEnd(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// decimalAt matches \d*\.\d+ at i and returns its end, or -1.
func decimalAt(s string, i int) int {
	j := digitsEnd(s, i)
	if at(s, j) != '.' || !isDigit(at(s, j+1)) {
		return -1
	}
	return digitsEnd(s, j+1)
}

// yearAt matches \b\d{4}s?\b at i and returns its end, or -1.
func yearAt(s string, i int) int {
	if !boundary(s, i) || i+4 > len(s) {
		return -1
	}
	for k := i; k < i+4; k++ {
		if !isDigit(s[k]) {
			return -1
		}
	}
	if at(s, i+4) == 's' && boundary(s, i+5) {
		return i + 5
	}
	if boundary(s, i+4) {
		return i + 4
	}
	return -1
}

// clockAt matches (?<!:)\b(?:[1-9]|1[0-2]):[0-5]\d\b(?!:) at i and returns
// its end, or -1.
func clockAt(s string, i int) int {
	if at(s, i-1) == ':' || !boundary(s, i) {
		return -1
	}
	for _, h := range []int{1, 2} { // [1-9] first, then 1[0-2]
		if h == 1 && !('1' <= at(s, i) && at(s, i) <= '9') {
			continue
		}
		if h == 2 && !(at(s, i) == '1' && '0' <= at(s, i+1) && at(s, i+1) <= '2') {
			continue
		}
		j := i + h
		if at(s, j) == ':' && '0' <= at(s, j+1) && at(s, j+1) <= '5' && isDigit(at(s, j+2)) &&
			boundary(s, j+3) && at(s, j+3) != ':' {
			return j + 3
		}
	}
	return -1
}

// splitNumbers rewrites clock times and four-digit years into words and
// smaller numbers; decimals are matched first and left alone (kokoro-js's
// split_num over /\d*\.\d+|\b\d{4}s?\b|(?<!:)\b(?:[1-9]|1[0-2]):[0-5]\d\b(?!:)/g).
func splitNumbers(s string) string {
	if !strings.ContainsAny(s, "0123456789") {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if !isDigit(s[i]) && s[i] != '.' {
			i++
			continue
		}
		if end := decimalAt(s, i); end >= 0 {
			i = end // unchanged
			continue
		}
		if end := yearAt(s, i); end >= 0 {
			b.WriteString(s[last:i])
			b.WriteString(sayYear(s[i:end]))
			last, i = end, end
			continue
		}
		if end := clockAt(s, i); end >= 0 {
			b.WriteString(s[last:i])
			b.WriteString(sayClock(s[i:end]))
			last, i = end, end
			continue
		}
		i++
	}
	b.WriteString(s[last:])
	return b.String()
}

// sayClock turns "7:45" into "7 45", "3:00" into "3 o'clock", "9:05" into
// "9 oh 5".
func sayClock(t string) string {
	h, m, _ := strings.Cut(t, ":")
	min, _ := strconv.Atoi(m)
	switch {
	case min == 0:
		return h + " o'clock"
	case min < 10:
		return h + " oh " + strconv.Itoa(min)
	}
	return h + " " + strconv.Itoa(min)
}

// sayYear splits a year the way it is read: 1987 → "19 87", 1905 → "19 oh 5",
// 1900 → "19 hundred", 1990s → "19 90s". Years below 1100 and those whose last
// three digits are below 10 (2004) are left to espeak-ng.
func sayYear(y string) string {
	year, _ := strconv.Atoi(y[:4])
	if year < 1100 || year%1000 < 10 {
		return y
	}
	century, rest := y[:2], year%100
	plural := ""
	if strings.HasSuffix(y, "s") {
		plural = "s"
	}
	if year%1000 >= 100 {
		if rest == 0 {
			return century + " hundred" + plural
		}
		if rest < 10 {
			return century + " oh " + strconv.Itoa(rest) + plural
		}
	}
	return century + " " + strconv.Itoa(rest) + plural
}

// dropDigitCommas removes thousands separators (/(?<=\d),(?=\d)/g).
func dropDigitCommas(s string) string {
	if !strings.Contains(s, ",") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == ',' && isDigit(at(s, i-1)) && isDigit(at(s, i+1)) {
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

var moneyScales = []string{" hundred", " thousand", " million", " billion", " trillion"}

// moneyAt matches kokoro-js's money expression at i (s[i:] starts with $ or
// £, whose byte length is sym) and returns its end, or -1. The expression is
// [$£]\d+(?:\.\d+)?(?: hundred| thousand| (?:[bm]|tr)illion)*\b (case
// insensitive); its second alternative can never match where this one fails.
func moneyAt(s string, i, sym int) int {
	start := i + sym
	intEnd := digitsEnd(s, start)
	if intEnd == start {
		return -1
	}
	end := intEnd
	hasDecimal := false
	if at(s, end) == '.' && isDigit(at(s, end+1)) {
		end = digitsEnd(s, end+1)
		hasDecimal = true
	}
	words := []int{end}
	for {
		matched := false
		for _, w := range moneyScales {
			if len(s)-end >= len(w) && asciiEqualFold(s[end:end+len(w)], w) {
				end += len(w)
				words = append(words, end)
				matched = true
				break
			}
		}
		if !matched {
			break
		}
	}
	if boundary(s, end) {
		return end
	}
	// Backtracking: dropping the last scale word always ends before a space.
	if len(words) > 1 {
		return words[len(words)-2]
	}
	if hasDecimal {
		return intEnd // before the '.', a boundary after a digit
	}
	return -1
}

// flipMoney reads amounts of money: "$12.50" → "12 dollars and 50 cents",
// "£1" → "1 pound", "$5 million" → "5 million dollars".
func flipMoney(s string) string {
	if !strings.ContainsAny(s, "$£") {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); i++ {
		sym := 0
		if s[i] == '$' {
			sym = 1
		} else if strings.HasPrefix(s[i:], "£") {
			sym = len("£")
		}
		if sym == 0 {
			continue
		}
		end := moneyAt(s, i, sym)
		if end < 0 {
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(sayMoney(s[i:i+sym] == "$", s[i+sym:end]))
		last = end
		i = end - 1
	}
	b.WriteString(s[last:])
	return b.String()
}

// sayMoney is kokoro-js's flip_money for the amount after the currency sign.
func sayMoney(dollar bool, amount string) string {
	unit := "pound"
	if dollar {
		unit = "dollar"
	}
	if strings.Contains(amount, " ") { // a scale word: Number() gives NaN
		return amount + " " + unit + "s"
	}
	whole, frac, ok := strings.Cut(amount, ".")
	if !ok {
		if amount == "1" {
			return amount + " " + unit
		}
		return amount + " " + unit + "s"
	}
	if whole != "1" {
		unit += "s"
	}
	for len(frac) < 2 {
		frac += "0"
	}
	n, _ := strconv.ParseFloat(frac, 64) // parseInt: digits only, may be huge
	small := "pence"
	if dollar {
		small = "cents"
	}
	if n == 1 {
		small = "penny"
		if dollar {
			small = "cent"
		}
	}
	return whole + " " + unit + " and " + jsNumber(n) + " " + small
}

// jsNumber formats a non-negative float64 as JavaScript's String(n) does.
func jsNumber(n float64) string {
	switch {
	case math.IsInf(n, 1):
		return "Infinity"
	case n >= 1e21:
		return strconv.FormatFloat(n, 'g', -1, 64)
	}
	return strconv.FormatFloat(n, 'f', -1, 64)
}

// pointNumbers reads the remaining decimals digit by digit after "point":
// "98.6" → "98 point 6", "3.14" → "3 point 1 4".
func pointNumbers(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if !isDigit(s[i]) && s[i] != '.' {
			i++
			continue
		}
		end := decimalAt(s, i)
		if end < 0 {
			i++
			continue
		}
		whole, frac, _ := strings.Cut(s[i:end], ".")
		b.WriteString(s[last:i])
		b.WriteString(whole)
		b.WriteString(" point")
		for k := 0; k < len(frac); k++ {
			b.WriteByte(' ')
			b.WriteByte(frac[k])
		}
		last, i = end, end
	}
	b.WriteString(s[last:])
	return b.String()
}

// digitRanges reads a hyphen between digits as "to" (/(?<=\d)-(?=\d)/g).
func digitRanges(s string) string {
	if !strings.Contains(s, "-") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '-' && isDigit(at(s, i-1)) && isDigit(at(s, i+1)) {
			b.WriteString(" to ")
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// spaceDigitS separates a capital S from a digit before it (/(?<=\d)S/g).
func spaceDigitS(s string) string {
	if !strings.Contains(s, "S") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 'S' && isDigit(at(s, i-1)) {
			b.WriteString(" S")
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isUpperConsonant is [BCDFGHJ-NP-TV-Z].
func isUpperConsonant(c byte) bool {
	return isUpper(c) && !strings.ContainsRune("AEIOU", rune(c))
}

// pluralInitialisms writes the plural or possessive s of an initialism that
// ends in a consonant as 'S, so espeak-ng says "ess" and not a word ("CDs" →
// "CD'S"; /(?<=[BCDFGHJ-NP-TV-Z])'?s\b/g).
func pluralInitialisms(s string) string {
	if !strings.Contains(s, "s") {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 1; i < len(s); i++ {
		if !isUpperConsonant(s[i-1]) {
			continue
		}
		end := -1
		if s[i] == '\'' && at(s, i+1) == 's' && boundary(s, i+2) {
			end = i + 2
		} else if s[i] == 's' && boundary(s, i+1) {
			end = i + 1
		}
		if end < 0 {
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString("'S")
		last = end
		i = end - 1
	}
	b.WriteString(s[last:])
	return b.String()
}

// xPossessive undoes the previous rule for X ("X'S" → "X's"; /(?<=X')S\b/g).
func xPossessive(s string) string {
	if !strings.Contains(s, "X'S") {
		return s
	}
	b := []byte(s)
	for i := 2; i < len(b); i++ {
		if b[i] == 'S' && b[i-1] == '\'' && b[i-2] == 'X' && boundary(s, i+1) {
			b[i] = 's'
		}
	}
	return string(b)
}

// hyphenateInitialismsBeforeLower replaces the dots of two or more dotted
// letters followed by a space and a lower-case word with hyphens, so the last
// dot does not end a sentence: "e.g. apples" → "e-g- apples"
// (/(?:[A-Za-z]\.){2,} [a-z]/g).
func hyphenateInitialismsBeforeLower(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	b := []byte(s)
	for i := 0; i < len(s); {
		j := i
		for isLetter(at(s, j)) && at(s, j+1) == '.' {
			j += 2
		}
		pairs := (j - i) / 2
		if pairs >= 2 && at(s, j) == ' ' && isLower(at(s, j+1)) {
			for k := i + 1; k < j; k += 2 {
				b[k] = '-'
			}
			i = j + 2
			continue
		}
		if pairs > 0 {
			// Every start inside this chain ends at the same place and fails too.
			i = j
			continue
		}
		i++
	}
	return string(b)
}

// hyphenateLetterDots replaces a dot between two letters with a hyphen
// ("U.S.A." → "U-S-A."; /(?<=[A-Z])\.(?=[A-Z])/gi).
func hyphenateLetterDots(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	b := []byte(s)
	for i := 1; i+1 < len(s); i++ {
		if s[i] == '.' && isLetter(s[i-1]) && isLetter(s[i+1]) {
			b[i] = '-'
		}
	}
	return string(b)
}

// asciiEqualFold reports whether s and t are equal ignoring ASCII case, as a
// JavaScript regular expression with the i flag compares ASCII text.
func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		a, b := s[i], t[i]
		if isUpper(a) {
			a += 'a' - 'A'
		}
		if isUpper(b) {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}
