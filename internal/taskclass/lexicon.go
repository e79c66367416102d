package taskclass

import "strings"

// techTerms are names from software's vocabulary that carry across languages: a German,
// Japanese or Turkish question about git, React or pandas keeps these words in Latin script.
// The model learns each word's weight from the corpus; this list adds one shared feature (how
// many distinct terms a part has), so a framework the corpus never named still counts.
var techTerms = set(`
api apis sdk cli gui ide repo repos git github gitlab bitbucket commit commits branch branches rebase merge
pull push clone checkout stash diff patch diffs pr prs ci cd pipeline pipelines yaml yml json xml csv toml ini
html css scss sass tailwind bootstrap dom jsx tsx js ts javascript typescript node nodejs npm npx pnpm yarn bun deno
react redux nextjs next.js vue vuex nuxt svelte angular jquery webpack vite babel eslint prettier jest vitest mocha
cypress playwright selenium python pip pipenv poetry conda venv django flask fastapi pydantic numpy pandas scipy
matplotlib seaborn sklearn scikit pytorch torch tensorflow keras jupyter notebook dataframe series ndarray
java jvm kotlin gradle maven spring springboot hibernate jpa junit mockito scala sbt groovy
go golang goroutine goroutines rust cargo crate crates rustc clippy tokio c++ cpp gcc clang cmake makefile
c# csharp dotnet .net nuget linq asp.net blazor php laravel symfony composer ruby rails gem bundler rspec
swift swiftui xcode ios android flutter dart objective-c elixir erlang haskell clojure lua perl r rstudio
sql mysql postgres postgresql psql sqlite mongodb mongo redis cassandra dynamodb elasticsearch kafka rabbitmq
orm query queries index indexes schema migration migrations transaction transactions join joins
docker dockerfile compose container containers image images kubernetes k8s kubectl helm pod pods deployment
ingress namespace terraform ansible puppet chef vagrant nginx apache haproxy systemd systemctl journalctl cron
crontab ssh scp rsync bash zsh shell powershell sh sudo chmod chown grep sed awk curl wget linux ubuntu debian
aws s3 ec2 lambda gcp azure cloudflare vercel heroku jenkins github-actions gitlab-ci argocd prometheus grafana
http https rest graphql grpc websocket websockets oauth jwt cors csrf tls ssl dns tcp udp localhost port ports
endpoint endpoints middleware backend frontend server servers client database db cache caching cdn
function functions method methods class classes interface interfaces struct structs enum enums variable
variables const let var lambda closure closures callback callbacks promise promises async await thread threads
mutex deadlock goroutine concurrency recursion iterator generator decorator decorators regex regexp
compile compiler compiling runtime exception exceptions stacktrace traceback segfault null nullpointerexception
undefined nan bug bugs debug debugger debugging breakpoint logging logger refactor refactoring linter lint unittest
unit-test tests test testing mock mocks fixture fixtures deploy deployed deploying build builds rollback
array arrays list dict dictionary hashmap hashtable tuple string strings int integer float boolean bool pointer
pointers heap stack queue linked-list bst algorithm algorithms big-o complexity
`)

func set(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(s) {
		m[w] = true
	}
	return m
}
