package views

import (
	"bytes"
	"context"

	"github.com/hxchat/hxchat/chat"
)

// RenderMessage renders m's log fragment; it is the hub's RenderFunc.
func RenderMessage(m chat.Message) ([]byte, error) {
	var b bytes.Buffer
	if err := Message(m).Render(context.Background(), &b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
