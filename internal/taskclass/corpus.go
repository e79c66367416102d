package taskclass

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Turn is one message of a conversation as the classifier reads it.
type Turn struct {
	Role   string // system, user, assistant, tool (Ollama's and OpenAI's names)
	Text   string // its text parts, joined; for an assistant's tool calls, their names and arguments
	Images int    // image parts
	Calls  bool   // an assistant turn that calls tools
}

// FromTurns is what the classifier reads of a conversation: the last user turn; the latest
// tool result after it (an agent's loop); up to three earlier turns as context, newest first;
// the system prompts.
func FromTurns(turns []Turn) Input {
	var in Input
	last := -1
	for i, t := range turns {
		switch t.Role {
		case "user":
			last = i
		case "tool", "function", "ipython":
			in.Agent = true
		case "assistant":
			in.Agent = in.Agent || t.Calls
		case "system", "developer":
			if in.System == "" {
				in.System = t.Text
			} else if len(in.System) < systemCap {
				in.System += "\n" + t.Text
			}
		}
	}
	if last >= 0 {
		in.Ask = turns[last].Text
	}
	for i := len(turns) - 1; i > last; i-- {
		if r := turns[i].Role; r == "tool" || r == "function" || r == "ipython" {
			in.Tool = turns[i].Text
			break
		}
	}
	if last < 0 && in.Tool == "" { // no user turn: the last non-system turn is the ask
		for i := len(turns) - 1; i >= 0; i-- {
			if r := turns[i].Role; r != "system" && r != "developer" && turns[i].Text != "" {
				in.Ask, last = turns[i].Text, i
				break
			}
		}
	}
	for i := last - 1; i >= 0 && len(in.Context) < contextKeep; i-- {
		if r := turns[i].Role; (r == "user" || r == "assistant" || r == "tool") && turns[i].Text != "" {
			in.Context = append(in.Context, turns[i].Text)
		}
	}
	return in
}

// Example is one labelled request of a corpus or an evaluation file.
type Example struct {
	Task   string // code, reasoning, general, vision, embedding
	Turns  []Turn
	Body   json.RawMessage // the request as written (without the labels)
	Lang   string
	Style  string
	Where  string // file:line
	Images int
}

// Input is what the classifier reads of the example.
func (e *Example) Input() Input { return FromTurns(e.Turns) }

// labelled is a line of a labelled file: an OpenAI chat-completions body with labels.
type labelled struct {
	Task     string          `json:"task"`
	Lang     string          `json:"lang"`
	Style    string          `json:"style"`
	Messages []chatMessage   `json:"messages"`
	Prompt   json.RawMessage `json:"prompt"` // a completions or generate body
}

type chatMessage struct {
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	Images    []string        `json:"images"` // Ollama's
	ToolCalls []struct {
		Function struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		} `json:"function"`
	} `json:"tool_calls"`
}

// TurnsOf reads OpenAI (or Ollama) chat messages: text parts joined, image parts counted,
// tool calls written as "name arguments".
func turnsOf(msgs []chatMessage) ([]Turn, error) {
	turns := make([]Turn, 0, len(msgs))
	for i, m := range msgs {
		t := Turn{Role: strings.ToLower(m.Role), Images: len(m.Images), Calls: len(m.ToolCalls) > 0}
		c := bytes.TrimSpace(m.Content)
		switch {
		case len(c) == 0 || string(c) == "null":
		case c[0] == '"':
			if err := json.Unmarshal(c, &t.Text); err != nil {
				return nil, fmt.Errorf("messages[%d].content: %v", i, err)
			}
		case c[0] == '[':
			var parts []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			}
			if err := json.Unmarshal(c, &parts); err != nil {
				return nil, fmt.Errorf("messages[%d].content: want a string or an array of parts: %v", i, err)
			}
			var sb strings.Builder
			for _, p := range parts {
				switch p.Type {
				case "text", "input_text":
					if sb.Len() > 0 {
						sb.WriteByte('\n')
					}
					sb.WriteString(p.Text)
				case "image_url", "input_image", "image":
					t.Images++
				}
			}
			t.Text = sb.String()
		default:
			return nil, fmt.Errorf("messages[%d].content: want a string or an array of parts", i)
		}
		for _, tc := range m.ToolCalls {
			args := string(tc.Function.Arguments)
			var s string
			if json.Unmarshal(tc.Function.Arguments, &s) == nil {
				args = s
			}
			t.Text = strings.TrimSpace(t.Text + "\n" + tc.Function.Name + " " + args)
		}
		turns = append(turns, t)
	}
	return turns, nil
}

// ReadLabelled reads a JSON Lines file of labelled requests: each line a chat-completions
// body (OpenAI or Ollama) with "task" beside "messages". Errors name the file and line.
func ReadLabelled(r io.Reader, name string) ([]Example, error) {
	var out []Example
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), 8<<20)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		where := fmt.Sprintf("%s:%d", name, n)
		var l labelled
		if err := json.Unmarshal(line, &l); err != nil {
			return nil, fmt.Errorf("%s: not a JSON object: %v", where, err)
		}
		switch l.Task {
		case "code", "reasoning", "general", "vision", "embedding":
		case "":
			return nil, fmt.Errorf(`%s: no "task" label (want code, reasoning, general or vision)`, where)
		default:
			return nil, fmt.Errorf(`%s: task %q is not a task class (want code, reasoning, general or vision)`, where, l.Task)
		}
		turns, err := turnsOf(l.Messages)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		if len(turns) == 0 {
			var p string
			if json.Unmarshal(l.Prompt, &p) != nil || p == "" {
				return nil, fmt.Errorf(`%s: no "messages" (or "prompt") to classify`, where)
			}
			turns = []Turn{{Role: "user", Text: p}}
		}
		e := Example{Task: l.Task, Turns: turns, Body: slices.Clone(line), Lang: l.Lang, Style: l.Style, Where: where}
		for _, t := range turns {
			e.Images += t.Images
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: line %d: %v", name, n+1, err)
	}
	return out, nil
}

// ReadDir reads every *.jsonl file of a directory, in name order.
func ReadDir(dir string) ([]Example, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	var out []Example
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		ex, err := ReadLabelled(fh, f)
		fh.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, ex...)
	}
	return out, nil
}
