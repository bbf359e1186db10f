package main

import (
	"context"
	"fmt"
	"strings"
)

const voicesHelp = `Lists the voices the server's engines offer, grouped by language, with
gender and grade; * marks the server's default voice.`

// runVoices is "ttsctl voices".
func runVoices(ctx context.Context, a *app, args []string) int {
	fs := a.flagSet("voices", "[-lang a|b|...] [-json]", voicesHelp)
	lang := fs.String("lang", "", "only this language: its code (a, b, e, ...) or name (en-us, en-gb, ...)")
	asJSON := fs.Bool("json", false, "print the server's JSON")
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		return a.fail(usageErrorf("voices takes no arguments, got %q", fs.Args()))
	}
	c, err := a.client()
	if err != nil {
		return a.fail(err)
	}
	list, raw, err := c.voices(ctx)
	if err != nil {
		return a.fail(err)
	}
	if *asJSON && *lang == "" {
		if err := printJSON(a.stdout, raw); err != nil {
			return a.fail(err)
		}
		return exitOK
	}
	voices := list.Voices
	if *lang != "" {
		voices = nil
		for _, v := range list.Voices {
			if strings.EqualFold(v.LanguageCode, *lang) || strings.EqualFold(v.Language, *lang) {
				voices = append(voices, v)
			}
		}
		if len(voices) == 0 {
			return a.fail(usageErrorf("no voices for language %q (languages: %s)", *lang, languages(list.Voices)))
		}
	}
	if *asJSON {
		return printValue(a, voiceList{Voices: voices, Default: list.Default})
	}
	printVoices(a, voices, list.Default)
	return exitOK
}

// languages lists the languages of voices as "a (en-us), b (en-gb)".
func languages(voices []voice) string {
	var out []string
	seen := map[string]bool{}
	for _, v := range voices {
		if !seen[v.LanguageCode] {
			seen[v.LanguageCode] = true
			out = append(out, v.LanguageCode+" ("+v.Language+")")
		}
	}
	return strings.Join(out, ", ")
}

// printVoices prints one block per language, in the server's order.
func printVoices(a *app, voices []voice, def string) {
	var (
		order  []string
		groups = map[string][]voice{}
		width  int
	)
	for _, v := range voices {
		if _, ok := groups[v.LanguageCode]; !ok {
			order = append(order, v.LanguageCode)
		}
		groups[v.LanguageCode] = append(groups[v.LanguageCode], v)
		width = max(width, len(v.ID))
	}
	for i, code := range order {
		g := groups[code]
		if i > 0 {
			fmt.Fprintln(a.stdout)
		}
		fmt.Fprintf(a.stdout, "%s  %s  (%d voices)\n", code, g[0].Language, len(g))
		for _, v := range g {
			mark := " "
			if v.ID == def {
				mark = "*"
			}
			grade := v.Grade
			if grade == "" {
				grade = "-"
			}
			fmt.Fprintf(a.stdout, "  %s %-*s  %-6s  %s\n", mark, width, v.ID, v.Gender, grade)
		}
	}
}
