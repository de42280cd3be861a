/** Server-sent events over a fetch body (web streams): (event, data) pairs. */
export async function* sseEvents(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let event = null;
    let data = [];
    const line = (raw) => {
        const l = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
        if (l === "") {
            if (data.length === 0 && event === null)
                return null;
            const out = { event, data: data.join("\n") };
            event = null;
            data = [];
            return out;
        }
        if (l.startsWith(":"))
            return null;
        const colon = l.indexOf(":");
        const name = colon < 0 ? l : l.slice(0, colon);
        let value = colon < 0 ? "" : l.slice(colon + 1);
        if (value.startsWith(" "))
            value = value.slice(1);
        if (name === "data")
            data.push(value);
        else if (name === "event")
            event = value;
        return null;
    };
    try {
        for (;;) {
            const { value, done } = await reader.read();
            if (done)
                break;
            buffer += decoder.decode(value, { stream: true });
            let nl;
            while ((nl = buffer.indexOf("\n")) >= 0) {
                const ev = line(buffer.slice(0, nl));
                buffer = buffer.slice(nl + 1);
                if (ev)
                    yield ev;
            }
        }
        buffer += decoder.decode();
        if (buffer) {
            const ev = line(buffer);
            if (ev)
                yield ev;
        }
        const last = line("");
        if (last)
            yield last;
    }
    finally {
        await reader.cancel().catch(() => undefined);
    }
}
