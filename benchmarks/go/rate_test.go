// The comparison for TokenBucket::try_acquire: golang.org/x/time/rate's
// Limiter.Allow on a bucket that always admits, as bench_limiter's
// BM_TokenBucket_TryAcquire does. scripts/bench runs it with Debian's Go
// (golang-go, golang-golang-x-time-dev) when they are installed; nothing
// else needs Go.
package ratebench

import (
	"testing"

	"golang.org/x/time/rate"
)

func BenchmarkAllow(b *testing.B) {
	limiter := rate.NewLimiter(rate.Limit(1e9), 1e9)
	for i := 0; i < b.N; i++ {
		if !limiter.Allow() {
			b.Fatal("refused")
		}
	}
}
