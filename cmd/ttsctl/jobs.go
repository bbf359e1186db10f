package main

import (
	"context"
	"encoding/json"
	"fmt"
)

const jobsHelp = `Lists recent jobs, newest first, following the server's pages until -limit
jobs are shown. -json prints {"jobs":[...],"next_cursor":...} in the server's
shape.`

// runJobs is "ttsctl jobs".
func runJobs(ctx context.Context, a *app, args []string) int {
	fs := a.flagSet("jobs", "[-status s] [-limit n] [-json]", jobsHelp)
	status := fs.String("status", "", "only jobs in this state: queued, running, succeeded, failed or canceled")
	limit := fs.Int("limit", 20, "how many jobs to show at most")
	page := fs.Int("page", 100, "jobs asked for per request (1 to 100)")
	asJSON := fs.Bool("json", false, "print the server's JSON")
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		return a.fail(usageErrorf("jobs takes no arguments, got %q", fs.Args()))
	}
	if *limit < 1 {
		return a.fail(usageErrorf("-limit must be at least 1"))
	}
	if *page < 1 || *page > 100 {
		return a.fail(usageErrorf("-page must be from 1 to 100"))
	}
	c, err := a.client()
	if err != nil {
		return a.fail(err)
	}
	var (
		all    []json.RawMessage
		cursor string
	)
	for len(all) < *limit {
		l, err := c.jobs(ctx, *status, cursor, min(*page, *limit-len(all)))
		if err != nil {
			return a.fail(err)
		}
		all = append(all, l.Jobs...)
		cursor = l.NextCursor
		if cursor == "" || len(l.Jobs) == 0 {
			break
		}
	}
	if *asJSON {
		b, err := json.Marshal(jobList{Jobs: all, NextCursor: cursor})
		if err != nil {
			return a.fail(err)
		}
		if err := printJSON(a.stdout, b); err != nil {
			return a.fail(err)
		}
		return exitOK
	}
	if len(all) == 0 {
		fmt.Fprintln(a.stderr, "ttsctl: no jobs")
		return exitOK
	}
	list := make([]*job, 0, len(all))
	for _, raw := range all {
		var j job
		if err := json.Unmarshal(raw, &j); err != nil {
			return a.fail(fmt.Errorf("the server's job list is not what ttsctl expects: %w", err))
		}
		list = append(list, &j)
	}
	printJobTable(a.stdout, list)
	if cursor != "" {
		fmt.Fprintf(a.stderr, "ttsctl: more jobs than -limit %d\n", *limit)
	}
	return exitOK
}
