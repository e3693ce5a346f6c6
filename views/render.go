package views

import (
	"bytes"
	"context"
	"io"

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

// Render renders any component to bytes, for SSE event data.
func Render(c interface {
	Render(context.Context, io.Writer) error
}) ([]byte, error) {
	var b bytes.Buffer
	if err := c.Render(context.Background(), &b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
