package testsvc_test

import (
	"net"
	"net/http"
	"testing"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
)

func TestMinIO(t *testing.T) {
	var srv testsvc.MinIOServer
	t.Run("running", func(t *testing.T) {
		srv = testsvc.MinIO(t)
		if srv.AccessKey == "" || srv.SecretKey == "" {
			t.Errorf("credentials are empty: %+v", srv)
		}
		resp, err := http.Get("http://" + srv.Endpoint + "/minio/health/live")
		if err != nil {
			t.Fatalf("health check: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("health check: %s", resp.Status)
		}
		// The S3 API refuses anonymous listing, proving it is MinIO's API
		// and not just something answering on the port.
		resp, err = http.Get("http://" + srv.Endpoint + "/")
		if err != nil {
			t.Fatalf("GET /: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("anonymous GET / = %s; want 403 Forbidden", resp.Status)
		}
	})
	if srv.Endpoint == "" {
		return // skipped: no binary
	}
	// The subtest's cleanup stopped the server.
	if conn, err := net.Dial("tcp", srv.Endpoint); err == nil {
		conn.Close()
		t.Errorf("MinIO still listens on %s after its test ended", srv.Endpoint)
	}
}
