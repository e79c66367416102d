package pull

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/hub"
	"citadel.dev/citadel/internal/netclass"
)

// TestRefusedAdviceOnce: a refused connection the client already explained carries its advice
// once; an unexplained one gets the pull's.
func TestRefusedAdviceOnce(t *testing.T) {
	refused := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/api/models/org/m", Err: &net.OpError{Op: "dial", Net: "tcp",
		Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	explained := netclass.Explain(refused, netclass.Advice{Refused: "check the endpoint (HF_ENDPOINT) and that the hub or mirror is up"})
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"explained by the client", explained, "nothing accepts connections there; check the endpoint (HF_ENDPOINT) and that the hub or mirror is up"},
		{"bare", refused, "nothing listens there; check HF_ENDPOINT / the registry address and that the hub or mirror is up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pe := classify(tc.err, "")
			if pe.Reason != ReasonConnectionFailed || !pe.Retryable {
				t.Errorf("reason %s retryable %v, want ConnectionFailed, retryable", pe.Reason, pe.Retryable)
			}
			if !strings.HasSuffix(pe.Message, tc.want) || strings.Count(pe.Message, "check ") != 1 {
				t.Errorf("message %q: want the advice once, ending %q", pe.Message, tc.want)
			}
			if !errors.Is(tc.err, syscall.ECONNREFUSED) {
				t.Error("the cause is lost")
			}
		})
	}
}

// TestReasonsAreDeclaredInAPI: every reason pull writes is an api/v1 constant that the
// catalogue (v1.Reasons) lists as pull's, so `citadel test` has a diagnosis for it
// (TestEveryReasonHasADiagnosis in internal/modeltest): a Reason constant of this package
// is an alias of one, and no Error is built with a literal reason.
func TestReasonsAreDeclaredInAPI(t *testing.T) {
	fset := token.NewFileSet()
	v1Values := map[string]string{} // api/v1 constant name → value
	for _, dir := range []string{"../../api/v1", "."} {
		names, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.ValueSpec:
					for i, id := range n.Names {
						if i >= len(n.Values) {
							continue
						}
						if dir != "." {
							if lit, ok := n.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								v1Values[id.Name], _ = strconv.Unquote(lit.Value)
							}
							continue
						}
						if !strings.HasPrefix(id.Name, "Reason") {
							continue
						}
						sel, ok := n.Values[i].(*ast.SelectorExpr)
						if x, isIdent := selX(sel); !ok || !isIdent || x != "v1" {
							t.Errorf("%s: %s is not an api/v1 reason constant", name, id.Name)
							continue
						}
						if !pullReason(v1Values[sel.Sel.Name]) {
							t.Errorf("%s: %s = v1.%s (%q) is not listed by v1.Reasons() as written from a pull Error", name, id.Name, sel.Sel.Name, v1Values[sel.Sel.Name])
						}
					}
				case *ast.KeyValueExpr:
					if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Reason" {
						if _, lit := n.Value.(*ast.BasicLit); lit {
							t.Errorf("%s: a literal reason at %s: declare it in api/v1", name, fset.Position(n.Pos()))
						}
					}
				case *ast.CallExpr:
					if fn, ok := n.Fun.(*ast.Ident); ok && fn.Name == "mk" && len(n.Args) > 0 {
						if _, lit := n.Args[0].(*ast.BasicLit); lit {
							t.Errorf("%s: a literal reason at %s: declare it in api/v1", name, fset.Position(n.Pos()))
						}
					}
				}
				return true
			})
		}
	}
}

func selX(sel *ast.SelectorExpr) (string, bool) {
	if sel == nil {
		return "", false
	}
	x, ok := sel.X.(*ast.Ident)
	if !ok {
		return "", false
	}
	return x.Name, true
}

func pullReason(name string) bool {
	for _, r := range v1.Reasons() {
		if r.Name == name && r.Definer == v1.WriterPull {
			return true
		}
	}
	return false
}

// TestErrorFacts: an Error carries the endpoint and HTTP status its message states.
func TestErrorFacts(t *testing.T) {
	for _, tc := range []struct {
		err      error
		endpoint string
		status   int
		reason   string
	}{
		{&hub.HTTPError{Method: "GET", Status: 503, URL: "https://mirror.example:8443/api/models/org/m?x=1"}, "https://mirror.example:8443", 503, ReasonUpstreamError},
		{&hub.HTTPError{Method: "GET", Status: 403, URL: "https://huggingface.co/api/models/org/m"}, "https://huggingface.co", 403, ReasonUnauthorized},
		{&hub.RateLimitedError{URL: "https://huggingface.co/org/m/resolve/main/a"}, "https://huggingface.co", 429, ReasonRateLimited},
		{&hub.RepoNotFoundError{Repo: "org/m", Endpoint: "https://huggingface.co"}, "https://huggingface.co", 0, ReasonRepoNotFound},
		{errors.New("something else"), "", 0, ReasonInternal},
	} {
		e := AsError(tc.err)
		if e.Reason != tc.reason || e.Endpoint != tc.endpoint || e.HTTPStatus != tc.status {
			t.Errorf("%v: reason %s endpoint %q status %d, want %s %q %d", tc.err, e.Reason, e.Endpoint, e.HTTPStatus, tc.reason, tc.endpoint, tc.status)
		}
	}
}
