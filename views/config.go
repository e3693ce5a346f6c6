package views

import (
	"fmt"
	"time"
)

// The SSE reconnect policy the pages give htmx (see layout.templ for the
// worst case it promises). Exported so tests can derive their bounds from it.
const (
	// ReconnectDelay is htmx's first reconnect delay, until a stream's
	// retry: field replaces it.
	ReconnectDelay = time.Second
	// ReconnectMaxDelay caps every reconnect delay, the server's retry
	// included.
	ReconnectMaxDelay = 4 * time.Second
	// ReconnectJitter is the ± fraction htmx adds to each delay.
	ReconnectJitter = 0.3
)

// HTMXConfig is the content of the pages' htmx-config meta tag (HCON).
var HTMXConfig = fmt.Sprintf("includeIndicatorCSS:false, sse.reconnectDelay:%d, sse.reconnectMaxDelay:%d, sse.reconnectJitter:%g",
	ReconnectDelay.Milliseconds(), ReconnectMaxDelay.Milliseconds(), ReconnectJitter)
