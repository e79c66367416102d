package modelinfo

import (
	"strconv"
)

// FormatParameterSize formats a parameter count the way OME's FormatParamCount does: in K, M, B
// or T, as an integer when whole, else with up to two decimals and trailing zeros trimmed
// ("7B", "8.29B", "1.5M", "500M"; below 1000 the plain number). It rounds to the nearest
// hundredth in exact integer arithmetic (OME uses %.2f on a float), and a value that rounds up to
// 1000 moves to the next unit ("1B", not "1000M"). It returns "" for n ≤ 0.
func FormatParameterSize(n int64) string {
	if n <= 0 {
		return ""
	}
	if n < 1000 {
		return strconv.FormatInt(n, 10)
	}
	units := [...]struct {
		suffix string
		size   uint64
	}{{"K", 1e3}, {"M", 1e6}, {"B", 1e9}, {"T", 1e12}}
	u := 0
	for u+1 < len(units) && uint64(n) >= units[u+1].size {
		u++
	}
	hundredths := func(u int) uint64 {
		step := units[u].size / 100
		return (uint64(n) + step/2) / step
	}
	h := hundredths(u)
	if h >= 100_000 && u+1 < len(units) {
		u++
		h = hundredths(u)
	}
	s := strconv.FormatUint(h/100, 10)
	switch frac := h % 100; {
	case frac == 0:
	case frac%10 == 0:
		s += "." + strconv.FormatUint(frac/10, 10)
	default:
		s += "." + strconv.FormatUint(frac/10, 10) + strconv.FormatUint(frac%10, 10)
	}
	return s + units[u].suffix
}

// FormatBytes formats a byte count in decimal units, as model and disk sizes are published
// ("16.6 GB", "524.7 kB"; below 1000 the plain number of bytes).
func FormatBytes(n int64) string {
	const unit = 1000
	if n < 0 {
		return "-" + FormatBytes(-n)
	}
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("kMGTPE"[exp]) + "B"
}
