"""OpenAI's Responses API (``POST /v1/responses``) as a client dialect of the hub.

- :mod:`.schema`: the request, validated with msgspec (a 400 names the param; unknown fields pass);
- :mod:`.to_hub`: a Responses request (and a stored conversation) -> the canonical chat request;
- :mod:`.from_hub`: a chat completion -> a Response object;
- :mod:`.encoder`: canonical chat chunks -> the Responses event stream.
"""
