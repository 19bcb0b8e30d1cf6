package metrics

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// waitHistogram is kube-apiserver's queue wait histogram for two levels,
// one with two flow schemas, as its /metrics serves it; n scales level a's
// counts, so that two scrapes differ.
func waitHistogram(n int) string {
	series := func(level, schema string, fast, slow int) string {
		s := ""
		cum := 0
		for _, b := range []struct {
			le    string
			count int
		}{{"0.005", fast}, {"0.5", 0}, {"1", slow}, {"+Inf", 0}} {
			cum += b.count
			s += fmt.Sprintf("apiserver_flowcontrol_request_wait_duration_seconds_bucket{execute=\"true\",flow_schema=%q,priority_level=%q,le=%q} %d\n", schema, level, b.le, cum)
		}
		return s + fmt.Sprintf("apiserver_flowcontrol_request_wait_duration_seconds_sum{execute=\"true\",flow_schema=%q,priority_level=%q} 1\n", schema, level) +
			fmt.Sprintf("apiserver_flowcontrol_request_wait_duration_seconds_count{execute=\"true\",flow_schema=%q,priority_level=%q} %d\n", schema, level, cum)
	}
	return "# TYPE apiserver_flowcontrol_request_wait_duration_seconds histogram\n" +
		series("a", "one", 45*n, 5*n) + series("a", "two", 45*n, 5*n) + series("b", "three", 7, 0)
}

func scrapeText(t *testing.T, text string) Families {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, text)
	}))
	defer srv.Close()
	f, err := Scrape(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestLevelWaitsFromTheServersHistogram reads a level's queue waits from
// the API server's histogram, across flow schemas and between scrapes,
// and puts the p99 where histogram_quantile would.
func TestLevelWaitsFromTheServersHistogram(t *testing.T) {
	const name = "apiserver_flowcontrol_request_wait_duration_seconds"
	first, second := scrapeText(t, waitHistogram(1)), scrapeText(t, waitHistogram(2))
	if got := second.LabelValues(name, "priority_level"); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("levels %v, want [a b]", got)
	}
	a := second.Histogram(name, map[string]string{"priority_level": "a"})
	if want := []float64{0.005, 0.5, 1, math.Inf(1)}; !slices.Equal(a.Upper, want) {
		t.Fatalf("bounds %v, want %v", a.Upper, want)
	}
	// Both flow schemas, twice the counts of the first scrape.
	if want := []float64{180, 180, 200, 200}; !slices.Equal(a.Cumulative, want) {
		t.Fatalf("cumulative %v, want %v", a.Cumulative, want)
	}
	since := a.Since(first.Histogram(name, map[string]string{"priority_level": "a"}))
	if want := []float64{90, 90, 100, 100}; !slices.Equal(since.Cumulative, want) {
		t.Fatalf("since the first scrape %v, want %v", since.Cumulative, want)
	}

	r := NewRecorder()
	r.LevelWaits("a", since)
	r.LevelSeats(time.Second, "a", 3)
	r.APIClientRequest(time.Second, "c", "b", false)
	s := r.Summary(Run{Duration: 10 * time.Second})
	// 90 waits under 5 ms and 10 between 0.5 and 1 s: the 99th is the
	// ninth of ten in the top bucket, 0.9-0.95 s (histogram_quantile says
	// 0.95 s, at the end of the ninth tenth; here each tenth is its middle).
	p99 := s.PriorityLevels["a"].QueueWaitP99Ms
	if p99 == nil || *p99 < 900 || *p99 > 950 {
		t.Errorf("level a's queue wait p99 = %v ms, want 900-950", p99)
	}
	if seats := s.PriorityLevels["a"].SeatsPeak; seats == nil || *seats != 3 {
		t.Errorf("level a's seats peak = %v, want 3", seats)
	}
	// Level b's seats were never measured: null, not 0.
	if seats := s.PriorityLevels["b"].SeatsPeak; seats != nil {
		t.Errorf("level b's seats peak = %d, never measured: want null", *seats)
	}
}
