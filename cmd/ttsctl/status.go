package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

const statusHelp = `Shows each job: a table by default, the server's JSON with -json (one
object per job).`

// runStatus is "ttsctl status".
func runStatus(ctx context.Context, a *app, args []string) int {
	fs := a.flagSet("status", "[-json] ID...", statusHelp)
	asJSON := fs.Bool("json", false, "print the server's JSON")
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(a.stderr, "ttsctl: status needs at least one job id")
		fs.Usage()
		return exitUsage
	}
	c, err := a.client()
	if err != nil {
		return a.fail(err)
	}
	code := exitOK
	var found []*job
	for _, id := range fs.Args() {
		j, raw, err := c.job(ctx, id)
		if err != nil {
			code = worst(code, a.fail(err, id))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if *asJSON {
			if err := printJSON(a.stdout, raw); err != nil {
				return a.fail(err)
			}
			continue
		}
		found = append(found, j)
	}
	if len(found) > 0 {
		printJobTable(a.stdout, found)
	}
	return code
}

// printJSON prints a JSON value indented, followed by a newline.
func printJSON(w io.Writer, raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// printJobTable prints jobs as an aligned table, times in the local zone.
func printJobTable(w io.Writer, jobs []*job) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tVOICE\tSPEED\tFORMAT\tCHARS\tAUDIO\tCREATED\tERROR")
	for _, j := range jobs {
		status := j.Status
		if j.CancelRequested {
			status += " (cancel requested)"
		}
		audio := "-"
		if j.Audio != nil {
			audio = fmt.Sprintf("%.1fs %s", j.Audio.DurationSeconds, byteSize(j.Audio.Bytes))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%g\t%s\t%d\t%s\t%s\t%s\n", j.ID, status, j.Voice, j.Speed, j.Format, j.Characters,
			audio, j.CreatedAt.Local().Format(time.DateTime), oneLine(j.Error, 60))
	}
	tw.Flush()
}

// byteSize renders n as B, kB or MB.
func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0fkB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

// oneLine keeps a table cell on one line and at most max runes.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

// printValue prints v as indented JSON.
func printValue(a *app, v any) int {
	b, err := json.Marshal(v)
	if err == nil {
		err = printJSON(a.stdout, b)
	}
	if err != nil {
		return a.fail(err)
	}
	return exitOK
}
