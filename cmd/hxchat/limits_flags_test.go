package main

import (
	"io"
	"net/netip"
	"slices"
	"testing"
)

func TestLimitFlags(t *testing.T) {
	t.Run("Defaults", func(t *testing.T) {
		o, err := parseFlags(nil, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.postRate != 5 || o.postBurst != 10 || o.streamsPer != 32 || o.streamsMax != 50000 || o.trusted != nil {
			t.Errorf("got post-rate %v burst %d streams %d/%d trusted %v; want 5, 10, 32/50000, none",
				o.postRate, o.postBurst, o.streamsPer, o.streamsMax, o.trusted)
		}
	})
	t.Run("EnvAndFlags", func(t *testing.T) {
		env := map[string]string{
			"HXCHAT_POST_RATE":              "0.5",
			"HXCHAT_POST_BURST":             "3",
			"HXCHAT_MAX_STREAMS_PER_CLIENT": "4",
			"HXCHAT_MAX_STREAMS":            "0",
			"HXCHAT_TRUSTED_PROXIES":        "192.0.2.1",
		}
		o, err := parseFlags([]string{"-trusted-proxies", "127.0.0.1, 10.0.0.0/8", "-post-rate", "0"},
			func(k string) string { return env[k] }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		want := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
		if !slices.Equal(o.trusted, want) {
			t.Errorf("trusted %v, want %v (the flag wins over the env)", o.trusted, want)
		}
		if o.postRate != 0 || o.postBurst != 3 || o.streamsPer != 4 || o.streamsMax != 0 {
			t.Errorf("got post-rate %v burst %d streams %d/%d; want 0, 3, 4/0", o.postRate, o.postBurst, o.streamsPer, o.streamsMax)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"NegativePostRate", []string{"-post-rate", "-1"}, nil},
		{"NaNPostRate", []string{"-post-rate", "NaN"}, nil},
		{"InfPostRate", []string{"-post-rate", "+Inf"}, nil},
		{"NegativeBurst", []string{"-post-burst", "-1"}, nil},
		{"ZeroBurstWithRate", []string{"-post-burst", "0"}, nil},
		{"NegativeStreamsPerClient", []string{"-max-streams-per-client", "-1"}, nil},
		{"NegativeStreams", []string{"-max-streams", "-5"}, nil},
		{"BadTrustedProxy", []string{"-trusted-proxies", "proxy.example"}, nil},
		{"BadTrustedProxyEnv", nil, map[string]string{"HXCHAT_TRUSTED_PROXIES": "10.0.0.0/33"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseFlags(tc.args, func(k string) string { return tc.env[k] }, io.Discard); err == nil {
				t.Fatal("parseFlags accepted a bad limit")
			}
		})
	}
	if _, err := parseFlags([]string{"-post-rate", "0", "-post-burst", "0"}, func(string) string { return "" }, io.Discard); err != nil {
		t.Errorf("-post-burst 0 with -post-rate 0 (no limit): %v", err)
	}
}
