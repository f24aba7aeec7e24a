"""The ceiling for bench/engine_load.py: a bare FastAPI endpoint under the same server settings."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
