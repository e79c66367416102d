# Reference for report_test.go: vllm/benchmarks/serve.py's console print statements (format
# strings as in vLLM), on the values of the test fixtures.
# Regenerate: python3 vllm_console.py full > vllm_console_full.txt; python3 vllm_console.py inf > vllm_console_inf.txt
def block(completed, failed, max_concurrency, request_rate, benchmark_duration, total_input, total_output,
          request_throughput, goodput, output_throughput, max_output_tokens_per_s, max_concurrent_requests,
          total_token_throughput, metrics):
    print("{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=50, c="="))
    print("{:<40} {:<10}".format("Successful requests:", completed))
    print("{:<40} {:<10}".format("Failed requests:", failed))
    if max_concurrency is not None:
        print("{:<40} {:<10}".format("Maximum request concurrency:", max_concurrency))
    if request_rate != float("inf"):
        print("{:<40} {:<10.2f}".format("Request rate configured (RPS):", request_rate))
    print("{:<40} {:<10.2f}".format("Benchmark duration (s):", benchmark_duration))
    print("{:<40} {:<10}".format("Total input tokens:", total_input))
    print("{:<40} {:<10}".format("Total generated tokens:", total_output))
    print("{:<40} {:<10.2f}".format("Request throughput (req/s):", request_throughput))
    if goodput is not None:
        print("{:<40} {:<10.2f}".format("Request goodput (req/s):", goodput))
    print("{:<40} {:<10.2f}".format("Output token throughput (tok/s):", output_throughput))
    print("{:<40} {:<10.2f}".format("Peak output token throughput (tok/s):", max_output_tokens_per_s))
    print("{:<40} {:<10.2f}".format("Peak concurrent requests:", max_concurrent_requests))
    print("{:<40} {:<10.2f}".format("Total token throughput (tok/s):", total_token_throughput))
    for attr, name, header in [("ttft", "TTFT", "Time to First Token"),
                               ("tpot", "TPOT", "Time per Output Token (excl. 1st token)"),
                               ("itl", "ITL", "Inter-token Latency"),
                               ("e2el", "E2EL", "End-to-end Latency")]:
        if attr not in metrics:
            continue
        mean, median, pcts = metrics[attr]
        print("{s:{c}^{n}}".format(s=header, n=50, c="-"))
        print("{:<40} {:<10.2f}".format(f"Mean {name} (ms):", mean))
        print("{:<40} {:<10.2f}".format(f"Median {name} (ms):", median))
        for p, value in pcts:
            p_word = str(int(p)) if int(p) == p else str(p)
            print("{:<40} {:<10.2f}".format(f"P{p_word} {name} (ms):", value))
    print("=" * 50)


import sys
which = sys.argv[1]
if which == "full":
    block(98, 2, 16, 8.0, 12.345678, 51200, 12800, 7.938, 7.125, 1036.8, 1280.0, 16, 5184.005,
          {"ttft": (123.456, 110.125, [(50, 110.125), (90, 180.5), (99, 250.995), (99.9, 312.4)]),
           "tpot": (21.5, 20.875, [(50, 20.875), (90, 25.0), (99, 30.125), (99.9, 31.0)]),
           "itl": (21.4, 19.99, [(50, 19.99), (90, 26.0), (99, 44.445), (99.9, 80.0)]),
           "e2el": (2860.0, 2795.5, [(50, 2795.5), (90, 3300.0), (99, 3999.999), (99.9, 4100.0)])})
else:
    block(1000, 0, None, float("inf"), 95.5, 1024000, 128000, 10.471204, None, 1340.314, 2816.0, 1000, 12062.8272,
          {"ttft": (43073.78, 43307.82, [(99, 83289.33)]),
           "tpot": (49.13, 50.31, [(99, 51.96)]),
           "itl": (48.6, 43.66, [(99, 55.69)])})
