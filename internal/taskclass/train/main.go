// Command train fits the task classifier to the labelled corpus and writes model.bin.gz.
// Run it through `go generate ./internal/taskclass`; the same corpus gives the same file.
//
//	go run ./internal/taskclass/train -corpus internal/taskclass/corpus/train -out internal/taskclass/model.bin.gz
//	go run ./internal/taskclass/train -corpus … -cv 5          # cross-validate on the training corpus only
//	go run ./internal/taskclass/train -corpus … -heldout internal/taskclass/corpus/heldout -out ''
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"

	"citadel.dev/citadel/internal/taskclass"
)

func main() {
	log.SetFlags(0)
	corpus := flag.String("corpus", "corpus/train", "directory of labelled *.jsonl training files")
	out := flag.String("out", "model.bin.gz", "where to write the model ('' to skip)")
	heldout := flag.String("heldout", "", "directory of held-out *.jsonl files to evaluate the trained model on")
	cv := flag.Int("cv", 0, "cross-validate with this many folds of the training corpus instead of training")
	epochs := flag.Int("epochs", 0, "passes over the corpus (0: the default)")
	rate := flag.Float64("rate", 0, "AdaGrad learning rate (0: the default)")
	l2 := flag.Float64("l2", 0, "weight decay (0: the default)")
	worst := flag.Int("worst", 0, "with -cv: list this many of the misroutes")
	flag.Parse()
	opts := taskclass.TrainOptions{Epochs: *epochs, Rate: *rate, L2: *l2}

	train, err := taskclass.ReadDir(*corpus)
	if err != nil {
		log.Fatal(err)
	}
	if len(train) == 0 {
		log.Fatalf("no labelled lines in %s/*.jsonl", *corpus)
	}
	if *cv > 1 {
		crossValidate(train, *cv, opts, *worst)
		return
	}
	m := taskclass.Train(train, opts)
	r, _ := taskclass.Evaluate(train, taskclass.Decider(m, 0))
	fmt.Fprintf(os.Stderr, "trained on %d lines of %s: %.1f %% on the training lines\n", len(train), *corpus, 100*r.Accuracy())
	if *out != "" {
		var buf bytes.Buffer
		if err := m.Encode(&buf); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "wrote %s (%d bytes)\n", *out, buf.Len())
	}
	if *heldout != "" {
		ho, err := taskclass.ReadDir(*heldout)
		if err != nil {
			log.Fatal(err)
		}
		r, _ := taskclass.Evaluate(ho, taskclass.Decider(m, taskclass.DefaultMinConfidence))
		r.Write(os.Stdout, 25)
	}
}

// crossValidate trains on all folds but one and evaluates on it, for each fold: the way to
// tune features and options without looking at the held-out set.
func crossValidate(all []taskclass.Example, k int, opts taskclass.TrainOptions, worst int) {
	var correct, total int
	var misses []taskclass.Miss
	for fold := range k {
		var tr, te []taskclass.Example
		for i, e := range all {
			if i%k == fold {
				te = append(te, e)
			} else {
				tr = append(tr, e)
			}
		}
		m := taskclass.Train(tr, opts)
		r, _ := taskclass.Evaluate(te, taskclass.Decider(m, taskclass.DefaultMinConfidence))
		correct += r.Correct
		total += r.Total
		misses = append(misses, r.Misses...)
		fmt.Printf("fold %d: %.1f %% of %d\n", fold, 100*r.Accuracy(), r.Total)
	}
	fmt.Printf("cross-validated: %.1f %% of %d\n", 100*float64(correct)/float64(total), total)
	for _, m := range misses[:min(worst, len(misses))] {
		fmt.Printf("  %s  %s → %s (%.2f)  %q\n", m.Where, m.Want, m.Got, m.Confidence, m.Ask)
	}
}
