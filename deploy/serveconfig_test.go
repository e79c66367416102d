package deploy_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"citadel.dev/citadel/internal/cli"
)

// TestServeConfigFile checks that the unit reads systemd/serve.yaml and that citadel serve
// accepts it as it is shipped: every key known, every value valid.
func TestServeConfigFile(t *testing.T) {
	unit := string(read(t, "systemd/citadel.service"))
	for _, want := range []string{"ExecStart=/usr/local/bin/citadel serve --config /etc/citadel/serve.yaml", "deploy/systemd/serve.yaml /etc/citadel/serve.yaml"} {
		if !strings.Contains(unit, want) {
			t.Errorf("citadel.service lacks %q", want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	if code := cli.Run(ctx, []string{"serve", "--config", "systemd/serve.yaml", "--print-config"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("citadel serve --config systemd/serve.yaml: exit %d\n%s", code, errb.String())
	}
	var got map[string]string
	if err := yaml.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"logFormat": "json", "gatewayAddr": "127.0.0.1:8080", "adminAddr": "127.0.0.1:8081", "gpus": "auto", "stallTimeout": "1m0s"} {
		if got[k] != want {
			t.Errorf("serve.yaml gives %s = %q, want %q", k, got[k], want)
		}
	}
	b, err := os.ReadFile("systemd/serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "\ndataDir:") {
		t.Error("serve.yaml sets dataDir: the kit keeps it in citadel.env (CITADEL_DATA_DIR), which citadel doctor reads too")
	}
}
