# Generates fnmatch.json, the oracle for TestMatchAgainstPython: Python's own fnmatch.fnmatchcase
# (the function huggingface_hub's filter_repo_objects uses on POSIX) on hand-picked and random cases.
# Run: python3 fnmatch_gen.py > fnmatch.json
import fnmatch, json, random, sys

hand = [
    ("config.json", "*.json"), ("sub/config.json", "*.json"), ("a/b/c.safetensors", "a/*"),
    ("a/b", "a/*"), ("a", "a/*"), ("model.safetensors", "*.safetensors"),
    ("model-00001-of-00004.safetensors", "model-0000[1-2]-*"), ("model-00003-of-00004.safetensors", "model-0000[1-2]-*"),
    ("x", "[!a]"), ("a", "[!a]"), ("[", "["), ("[]", "[]"), ("]", "[]]"), ("a]", "[!]]]"),
    ("b", "[z-a]"), ("b", "[!z-a]"), ("-", "[a-]"), ("-", "[-a]"), ("-", "[!-a]"), ("a\\b", "a\\b"),
    ("A.JSON", "*.json"), ("", "?"), ("", "*"), ("pytorch_model.bin.index.json", "*.bin"),
    ("onnx/model.onnx", "onnx/*"), ("x/onnx/model.onnx", "onnx/*"), ("abc", "a*c"), ("ac", "a*?c"),
    ("a\nb", "a*b"), ("a\nb", "a?b"), ("é", "?"), ("é", "[à-ê]"), ("c", "[a-b-c]"), ("-", "[a-b-c]"),
    ("b", "[a-cz-a]"), ("y", "[a-cz-a]"), ("^", "[^]"), ("!", "[!!]"), ("&", "[&&]"), ("~", "[~-~]"),
]
alphabet = list("ab-z!]/[.*?^\\")
rng = random.Random(20240601)
cases = list(hand)
while len(cases) < 3000:
    pat = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 7)))
    if rng.random() < 0.5:
        name = "".join(rng.choice("ab-z!]/[.^\\") for _ in range(rng.randint(0, 6)))
    else:  # a name shaped like the pattern, so that many cases match
        name = "".join(rng.choice("ab-z/.") * rng.randint(0, 2) if c == "*" else rng.choice("ab-z]!") if c in "?[" else c for c in pat)
    cases.append((name, pat))
out = []
for name, pat in cases:
    try:
        out.append([name, pat, fnmatch.fnmatchcase(name, pat)])
    except Exception:
        pass  # patterns Python itself cannot compile are not part of the contract
json.dump({"python": sys.version.split()[0], "cases": out}, sys.stdout, ensure_ascii=False, indent=0)
