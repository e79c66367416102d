package cli

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

var keyPattern = regexp.MustCompile(`ck-[0-9A-Za-z]{32}`)

func TestKeyCreateListRevoke(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")

	r := citadel(t, srv.addr, "", "key", "create", "lab", "--models", "mimo-vl,auto", "--rpm", "60", "--tpm", "100000", "--max-concurrent", "4")
	if r.code != 0 {
		t.Fatalf("key create: %+v", r)
	}
	secrets := keyPattern.FindAllString(r.stdout+r.stderr, -1)
	if len(secrets) != 1 {
		t.Fatalf("want the secret printed exactly once, found %d:\nstdout:\n%s\nstderr:\n%s", len(secrets), r.stdout, r.stderr)
	}
	secret := secrets[0]
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 2 || lines[0] != "apikey.citadel.dev/lab created" || lines[1] != secret {
		t.Fatalf("stdout: want the created line, then the secret alone on the last line:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "cannot be shown again") {
		t.Fatalf("no warning on stderr:\n%s", r.stderr)
	}

	// The stored object has the hash and the prefix, never the secret.
	raw := mustRun(t, srv.addr, "get", "apikey", "lab", "-o", "json")
	var k v1.APIKey
	if err := json.Unmarshal([]byte(raw), &k); err != nil {
		t.Fatal(err)
	}
	want := v1.APIKeySpec{
		Hash: v1.HashAPIKey(secret), Prefix: secret[:v1.APIKeyPrefixLen], Models: []string{"mimo-vl", "auto"},
		RequestsPerMinute: 60, TokensPerMinute: 100000, MaxConcurrent: 4,
	}
	if k.Kind != v1.KindAPIKey || k.APIVersion != v1.CitadelGroupVersion || k.Namespace != "" {
		t.Fatalf("stored %+v", k.TypeMeta)
	}
	if k.Spec.Hash != want.Hash || k.Spec.Prefix != want.Prefix || strings.Join(k.Spec.Models, ",") != "mimo-vl,auto" ||
		k.Spec.RequestsPerMinute != 60 || k.Spec.TokensPerMinute != 100000 || k.Spec.MaxConcurrent != 4 || k.Spec.ExpiresAt != nil {
		t.Fatalf("stored spec %+v, want %+v", k.Spec, want)
	}

	// Everything a user or an operator can see afterwards, and the server's logs.
	var seen strings.Builder
	for _, args := range [][]string{
		{"key", "list"}, {"key", "list", "-o", "yaml"}, {"get", "keys"}, {"get", "apikeys", "-o", "wide"},
		{"describe", "key", "lab"}, {"events", "-A"},
	} {
		seen.WriteString(mustRun(t, srv.addr, args...))
	}
	seen.WriteString(srv.logs.String())
	if strings.Contains(seen.String(), secret) || strings.Contains(seen.String(), secret[len(secret)-12:]) {
		t.Fatalf("the secret was shown or logged after creation:\n%s", seen.String())
	}

	// A second key, with an expiry, and the table.
	r = citadel(t, srv.addr, "", "key", "create", "ci", "--expires", "30d")
	if r.code != 0 {
		t.Fatalf("key create ci: %+v", r)
	}
	ciPrefix := keyPattern.FindString(r.stdout)[:v1.APIKeyPrefixLen]
	out := mustRun(t, srv.addr, "key", "list")
	rows := regexp.MustCompile(`(?m)^NAME\s+PREFIX\s+MODELS\s+RPM\s+TPM\s+CONCURRENT\s+STATUS\s+AGE\n` +
		`ci\s+` + regexp.QuoteMeta(ciPrefix) + `\s+\*\s+-\s+-\s+-\s+Active\s+\d+s\n` +
		`lab\s+` + regexp.QuoteMeta(secret[:8]) + `\s+mimo-vl,auto\s+60\s+100000\s+4\s+Active\s+\d+s\n$`)
	if !rows.MatchString(out) {
		t.Fatalf("key list:\n%s", out)
	}
	// The same table (the AGE column may have ticked over a second in between).
	age := regexp.MustCompile(`\d+s\n`)
	if got := mustRun(t, srv.addr, "get", "keys"); age.ReplaceAllString(got, "AGE\n") != age.ReplaceAllString(out, "AGE\n") {
		t.Fatalf("get keys differs from key list:\n%s\nvs\n%s", got, out)
	}
	wide := mustRun(t, srv.addr, "key", "list", "-o", "wide")
	exp := time.Now().Add(30 * 24 * time.Hour).UTC().Format("2006-01-02")
	if !strings.Contains(wide, "EXPIRES") || !strings.Contains(wide, exp) {
		t.Fatalf("key list -o wide lacks the expiry %s:\n%s", exp, wide)
	}

	// Creating over an existing key would replace its secret: refused.
	r = citadel(t, srv.addr, "", "key", "create", "lab")
	if r.code != 1 || !strings.Contains(r.stderr, `API key "lab" already exists`) || keyPattern.MatchString(r.stdout+r.stderr) {
		t.Fatalf("create over an existing key: %+v", r)
	}
	raw2 := mustRun(t, srv.addr, "get", "apikey", "lab", "-o", "json")
	if raw2 != raw {
		t.Fatalf("the refused create changed the key:\n%s\n%s", raw, raw2)
	}

	// Revoke.
	if out := mustRun(t, srv.addr, "key", "revoke", "lab"); out != "apikey.citadel.dev/lab revoked\n" {
		t.Fatalf("revoke: %q", out)
	}
	if out := mustRun(t, srv.addr, "key", "list"); strings.Contains(out, "lab") || !strings.Contains(out, "ci ") {
		t.Fatalf("key list after revoke:\n%s", out)
	}
	r = citadel(t, srv.addr, "", "key", "revoke", "lab")
	if r.code != 1 || !strings.Contains(r.stderr, `API key "lab" not found`) {
		t.Fatalf("second revoke: %+v", r)
	}
	mustRun(t, srv.addr, "key", "revoke", "ci")
	r = citadel(t, srv.addr, "", "key", "list")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "No apikeys found.") {
		t.Fatalf("empty key list: %+v", r)
	}
}

func TestKeySecretsAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		s, err := newKeySecret()
		if err != nil {
			t.Fatal(err)
		}
		if !keyPattern.MatchString(s) || len(s) != len(v1.APIKeyPrefix)+keySecretLen {
			t.Fatalf("malformed secret %q", s)
		}
		if seen[s] {
			t.Fatalf("secret %q generated twice", s)
		}
		seen[s] = true
	}
}

func TestKeyInvalid(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"key", "create"}, ExitUsage, "expected NAME"},
		{[]string{"key", "create", "x", "--rpm", "-1"}, ExitUsage, "must not be negative"},
		{[]string{"key", "create", "x", "--expires", "soon"}, ExitUsage, "--expires"},
		{[]string{"key", "create", "Bad_Name"}, ExitError, "metadata.name"},
		{[]string{"key", "create", "x", "--models", "a,a"}, ExitError, `spec.models[1]: "a" is listed twice`},
		{[]string{"key", "revoke"}, ExitUsage, "expected NAME"},
		{[]string{"key", "list", "-o", "xml"}, ExitUsage, "-o"},
	} {
		r := citadel(t, srv.addr, "", tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("citadel %s: exit %d, want %d with %q\n%s", strings.Join(tc.args, " "), r.code, tc.code, tc.msg, r.stderr)
		}
		if keyPattern.MatchString(r.stdout + r.stderr) {
			t.Errorf("citadel %s printed a key although nothing was created", strings.Join(tc.args, " "))
		}
	}
	if r := citadel(t, srv.addr, "", "key", "list"); r.stdout != "" {
		t.Fatalf("a failed create stored a key:\n%s", r.stdout)
	}
}

func TestAPIKeyApplyValidation(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	doc := "apiVersion: citadel.dev/v1alpha1\nkind: APIKey\nmetadata: {name: hand}\nspec:\n  hash: %s\n  requestsPerMinute: -1\n"
	r := citadel(t, srv.addr, strings.ReplaceAll(doc, "%s", "ck-PastedTheKeyInsteadOfItsHash12345"), "apply", "-f", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "spec.hash: looks like the key itself, not its hash") ||
		!strings.Contains(r.stderr, "spec.requestsPerMinute: must not be negative") || strings.Contains(r.stderr, "PastedTheKey") {
		t.Fatalf("apply of a bad key: %+v", r)
	}
	// A hand-written key with a hash computed elsewhere is fine (upper-case hex is folded).
	hash := strings.ToUpper(v1.HashAPIKey("ck-handmade"))
	r = citadel(t, srv.addr, "apiVersion: citadel.dev/v1alpha1\nkind: APIKey\nmetadata: {name: hand}\nspec: {hash: "+hash+"}\n", "apply", "-f", "-")
	if r.code != 0 || r.stdout != "apikey.citadel.dev/hand created\n" {
		t.Fatalf("apply of a hand-made key: %+v", r)
	}
	if got := mustRun(t, srv.addr, "get", "key", "hand", "-o", "yaml"); !strings.Contains(got, "hash: "+strings.ToLower(hash)) {
		t.Fatalf("stored:\n%s", got)
	}
}
