package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"os"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
)

// exampleServer runs citadel serve in-process on a loopback port in a temporary directory, so
// that the examples run as tests. A program would instead connect to a running server:
// client.New("") is the default 127.0.0.1:8081.
func exampleServer() (addr string, stop func()) {
	dir, err := os.MkdirTemp("", "citadel-example-")
	if err != nil {
		log.Fatal(err)
	}
	addr, stopServer, err := serve(dir, "")
	if err != nil {
		log.Fatal(err)
	}
	return addr, func() {
		if err := stopServer(); err != nil {
			log.Print(err)
		}
		os.RemoveAll(dir)
	}
}

const qwen = `{"apiVersion": "ome.io/v1beta1", "kind": "ClusterBaseModel",
  "metadata": {"name": "qwen", "labels": {"team": "lab"}},
  "spec": {"storage": {"storageUri": "hf://Qwen/Qwen2.5-0.5B-Instruct"}}}`

// Applying an object and reading it back.
func Example() {
	addr, stop := exampleServer()
	defer stop()

	c, err := client.New(addr, client.WithToken(os.Getenv("CITADEL_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	resp, err := c.Apply(ctx, v1.ApplyRequest{Items: []v1.ApplyItem{{Object: json.RawMessage(qwen)}}})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range resp.Results {
		fmt.Println(r.Kind, r.Name, r.Action, "generation", r.Generation)
	}

	o, err := c.Get(ctx, "model", "", "qwen") // any name of the kind: model, cbm, ClusterBaseModel …
	if err != nil {
		log.Fatal(err)
	}
	m := o.(*v1.ClusterBaseModel)
	fmt.Println(m.Name, *m.Spec.Storage.StorageURI)
	// Output:
	// ClusterBaseModel qwen created generation 1
	// qwen hf://Qwen/Qwen2.5-0.5B-Instruct
}

// A dry run checks and compares objects without storing them.
func ExampleClient_Apply_dryRun() {
	addr, stop := exampleServer()
	defer stop()
	c, _ := client.New(addr)
	ctx := context.Background()

	resp, err := c.Apply(ctx, v1.ApplyRequest{Items: []v1.ApplyItem{{Object: json.RawMessage(qwen)}}, DryRun: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("dry run:", resp.DryRun, resp.Results[0].Name, resp.Results[0].Action)

	_, err = c.Get(ctx, "model", "", "qwen")
	fmt.Println("stored:", !client.IsNotFound(err))
	// Output:
	// dry run: true qwen created
	// stored: false
}

// An invalid apply stores nothing; the error lists every problem with the file and document
// it was found in.
func ExampleAPIError() {
	addr, stop := exampleServer()
	defer stop()
	c, _ := client.New(addr)

	src := v1.Source{File: "models.yaml", Document: 2}
	_, err := c.Apply(context.Background(), v1.ApplyRequest{Items: []v1.ApplyItem{
		{Source: v1.Source{File: "models.yaml", Document: 1}, Object: json.RawMessage(qwen)},
		{Source: src, Object: json.RawMessage(qwen)},
	}})
	var ae *client.APIError
	if errors.As(err, &ae) {
		fmt.Println(ae.Code, ae.Reason)
		fmt.Println(ae.Message)
		fmt.Println(ae.Problems[0].File, ae.Problems[0].Document)
	}
	// Output:
	// 422 Invalid
	// 1 problem(s) found; nothing was applied
	// models.yaml 2
}

// Listing a kind in one namespace, or by label.
func ExampleClient_List() {
	addr, stop := exampleServer()
	defer stop()
	c, _ := client.New(addr)
	ctx := context.Background()

	var items []v1.ApplyItem
	for _, ns := range []string{"team-a", "team-b"} {
		items = append(items, v1.ApplyItem{Object: json.RawMessage(fmt.Sprintf(
			`{"apiVersion":"ome.io/v1beta1","kind":"BaseModel","metadata":{"name":"llm","namespace":%q,"labels":{"owner":%q}},
			  "spec":{"storage":{"storageUri":"hf://Qwen/Qwen2.5-0.5B-Instruct"}}}`, ns, ns))})
	}
	if _, err := c.Apply(ctx, v1.ApplyRequest{Items: items}); err != nil {
		log.Fatal(err)
	}
	for _, opts := range []client.ListOptions{{}, {Namespace: "team-b"}, {LabelSelector: "owner in (team-a,team-c)"}} {
		objs, err := c.List(ctx, "basemodels", opts)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%+v:", opts)
		for _, o := range objs {
			fmt.Printf(" %s/%s", o.GetObjectMeta().Namespace, o.GetObjectMeta().Name)
		}
		fmt.Println()
	}
	// Output:
	// {Namespace: LabelSelector:}: team-a/llm team-b/llm
	// {Namespace:team-b LabelSelector:}: team-b/llm
	// {Namespace: LabelSelector:owner in (team-a,team-c)}: team-a/llm
}

// A watch starts with one ADDED event per existing object, then reports every change; here
// it stops at the first event by returning an error from fn.
func ExampleClient_Watch() {
	addr, stop := exampleServer()
	defer stop()
	c, _ := client.New(addr)
	ctx := context.Background()
	if _, err := c.Apply(ctx, v1.ApplyRequest{Items: []v1.ApplyItem{{Object: json.RawMessage(qwen)}}}); err != nil {
		log.Fatal(err)
	}

	errSeen := errors.New("seen")
	err := c.Watch(ctx, "models", "", func(ev v1.WatchEvent) error {
		o, err := client.DecodeObject(ev.Object)
		if err != nil {
			return err
		}
		fmt.Println(ev.Type, o.GetTypeMeta().Kind, o.GetObjectMeta().Name)
		return errSeen
	})
	fmt.Println(errors.Is(err, errSeen))
	// Output:
	// ADDED ClusterBaseModel qwen
	// true
}

func ExampleIsNotFound() {
	addr, stop := exampleServer()
	defer stop()
	c, _ := client.New(addr)

	_, err := c.Get(context.Background(), "isvc", "prod", "chat")
	fmt.Println(client.IsNotFound(err))
	fmt.Println(err)
	// Output:
	// true
	// InferenceService "prod/chat" not found
}

// No server listens at the address: the error says how to start one.
func ExampleUnreachableError() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens here now

	c, _ := client.New(addr)
	err := c.Health(context.Background())
	var ue *client.UnreachableError
	ok := errors.As(err, &ue)
	fmt.Println(ok, ok && ue.Address == addr)
	// Output:
	// true true
}

// A server started without a serving controller (citadel serve --engines=false) keeps no
// GPU inventory and says so.
func ExampleClient_GPUs() {
	addr, stop := exampleServer()
	defer stop()
	c, _ := client.New(addr)

	l, err := c.GPUs(context.Background())
	if client.IsNotFound(err) {
		fmt.Println(err)
		return
	}
	for _, g := range l.Items {
		fmt.Println(g.Index, g.Name)
	}
	// Output:
	// this server runs no serving controller (citadel serve --engines=false), so it keeps no GPU inventory and places nothing on GPUs
}
