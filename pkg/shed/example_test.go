package shed_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/tailgate-sre/tailgate/pkg/shed"
)

func ExampleShedder_Middleware() {
	s, err := shed.New(shed.Config{
		Routes: map[string]shed.Criticality{
			"POST /api/checkout":       shed.Critical,
			"GET /api/recommendations": shed.Sheddable,
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Shutdown(context.Background())

	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/checkout", func(w http.ResponseWriter, r *http.Request) {
		c, _ := shed.FromContext(r.Context())
		fmt.Fprintf(w, "checked out (%s)", c)
	})
	mux.HandleFunc("GET /api/recommendations", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "you may also like")
	})
	// In a service: http.ListenAndServe(addr, otelhttp.NewHandler(s.Middleware(mux), "shop")).
	h := s.Middleware(mux)

	// An operator sheds every sheddable request; the limit would do the
	// same under overload.
	s.SetSheddablePercent(100)
	for _, req := range []*http.Request{
		httptest.NewRequest("POST", "/api/checkout", nil),
		httptest.NewRequest("GET", "/api/recommendations", nil),
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		fmt.Println(req.Method, req.URL.Path, w.Code, w.Header().Get("Retry-After"), w.Body.String())
	}
	// Output:
	// POST /api/checkout 200  checked out (critical)
	// GET /api/recommendations 503 1 service overloaded: request shed (shed_level), retry later
}

func ExampleWithCriticality() {
	s, err := shed.New(shed.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Shutdown(context.Background())
	app := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "report") })

	// A middleware that knows the caller, before the shedder, marks batch
	// clients sheddable.
	byCaller := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Client") == "nightly-report" {
				r = r.WithContext(shed.WithCriticality(r.Context(), shed.Sheddable))
			}
			next.ServeHTTP(w, r)
		})
	}
	h := byCaller(s.Middleware(app))

	s.SetSheddablePercent(100)
	for _, client := range []string{"web", "nightly-report"} {
		req := httptest.NewRequest("GET", "/report", nil)
		req.Header.Set("X-Client", client)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		fmt.Println(client, w.Code)
	}
	// Output:
	// web 200
	// nightly-report 503
}

func ExampleShedder_PollLevel() {
	// A stand-in for tailgate's OFREP endpoint, on 127.0.0.1.
	tailgate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/ofrep/v1/evaluate/flags/shed.sheddable_percent" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"key": "shed.sheddable_percent", "value": 25, "reason": "STATIC", "variant": "quarter"}`)
	}))
	defer tailgate.Close()

	s, err := shed.New(shed.Config{Level: shed.LevelConfig{
		URL:          tailgate.URL,
		TargetingKey: "checkout",
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Shutdown(context.Background())
	// A service calls s.Start(ctx) to poll every Level.Interval; here,
	// one poll.
	if err := s.PollLevel(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("refusing %g%% of sheddable requests\n", s.SheddablePercent())

	refused := 0
	for range 100 {
		tok, reason := s.Acquire(context.Background(), shed.Sheddable)
		if reason == shed.Level {
			refused++
			continue
		}
		tok.Done()
	}
	fmt.Println("refused", refused, "of 100")
	// Output:
	// refusing 25% of sheddable requests
	// refused 25 of 100
}
