// Calls the service's OpenAI-compatible endpoints with the official openai
// npm package, exactly as an application would, and prints what happened as
// one JSON line. pkg/httpapi's TestOpenAISDK runs it.
//
//   node speech.mjs <baseURL ending in /v1> <outfile> [voice] [response_format] [speed]
//
// Exit 0: the audio was written to <outfile>; stdout has its size, content
// type and the ids GET /v1/models listed. Exit 2: the API answered with an
// error, which stdout shows as the SDK reports it. Exit 1: anything else.
import { writeFile } from "node:fs/promises";
import OpenAI from "openai";

const [baseURL, outfile, voice = "af_heart", format = "wav", speed] = process.argv.slice(2);
if (!baseURL || !outfile) {
  console.error("usage: node speech.mjs <baseURL> <outfile> [voice] [response_format] [speed]");
  process.exit(1);
}

// The service has no API key; the SDK insists on one. No retries: the test
// wants the first answer.
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 60_000 });

try {
  const res = await client.audio.speech.create({
    model: "kokoro",
    voice,
    input: "Hello world",
    response_format: format,
    ...(speed === undefined ? {} : { speed: Number(speed) }),
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  await writeFile(outfile, bytes);
  const models = [];
  for await (const m of client.models.list()) models.push(m.id);
  console.log(JSON.stringify({
    ok: true,
    bytes: bytes.length,
    content_type: res.headers.get("content-type"),
    job_id: res.headers.get("x-job-id"),
    models,
  }));
} catch (err) {
  if (err instanceof OpenAI.APIError) {
    console.log(JSON.stringify({
      ok: false,
      name: err.constructor.name,
      status: err.status,
      code: err.code,
      message: err.message,
      request_id: err.requestID,
    }));
    process.exit(2);
  }
  console.error(err);
  process.exit(1);
}
