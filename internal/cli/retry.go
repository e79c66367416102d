package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
)

func newRetry(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "retry KIND NAME... [-n NAMESPACE]",
		Short: "Try a failed model again now",
		Long: `Try an object again now, without waiting for its next automatic attempt.

A Failed model (clusterbasemodel, basemodel) is downloaded again at once, its
retry back-off reset; partial files are kept and resumed. A Ready model has
its files checked now (missing or truncated ones are fetched again). A model
that is downloading, queued or disabled is left alone, and the answer says why.

An InferenceService has nothing of its own to retry: the serving controller
restarts crashed or unhealthy engines by itself. If the model it waits for is
Failed, that model is retried.

Re-applying a Failed model's file unchanged retries it too.`,
		Example: `  citadel retry model mimo-vl-7b-rl
  citadel retry basemodel qwen -n team-a
  citadel retry isvc mimo`,
		Args: argsBetween(2, -1, "KIND NAME..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := v1.LookupKind(args[0])
			if err != nil {
				return usageError{err}
			}
			switch info.Kind {
			case v1.KindClusterBaseModel, v1.KindBaseModel, v1.KindInferenceService:
			default:
				return usagef("%s has nothing to retry: citadel retry takes clusterbasemodel (model), basemodel (bm) and inferenceservice (isvc)", info.Plural)
			}
			c, err := e.client()
			if err != nil {
				return usageError{err}
			}
			ns := e.namespaceFor(info, false)
			failed := false
			for _, name := range args[1:] {
				res, err := c.Retry(cmd.Context(), info.Kind, ns, name)
				switch {
				case client.IsNotFound(err):
					fmt.Fprintf(e.stderr, "error: %v\n", notFound(info, ns, name))
					failed = true
				case err != nil:
					return err
				default:
					fmt.Fprintf(e.stdout, "%s %s\n", resourceName(res.Kind, res.Name), res.Action)
				}
			}
			if failed {
				return silentError{}
			}
			return nil
		},
	}
}
