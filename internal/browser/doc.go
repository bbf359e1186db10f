// Package browser drives the web front end (pkg/web) in headless Chromium
// against the real API binary: logging in, submitting text and playing the
// audio on the try-it page, and the operator dashboard's views and actions.
// It holds only tests; screenshots of every page go to $BROWSER_ARTIFACTS,
// or to internal/browser/artifacts/ (git-ignored).
package browser
