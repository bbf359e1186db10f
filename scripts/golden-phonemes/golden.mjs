// golden.mjs writes the golden files of pkg/phonemize from kokoro-js@1.2.1's
// own English front end, run in Node without the model.
//
//   npm ci --ignore-scripts     # no install scripts: nothing here needs
//                               # onnxruntime-node's or sharp's native set-up
//   node golden.mjs             # writes ../../pkg/phonemize/testdata/golden/*.json
//                               # from sentences.json
//   node golden.mjs --check     # reads a JSON array of strings on stdin and prints
//                               # [{text, normalized, a, b}] (for ad-hoc differential runs)
//   node golden.mjs --check-normalize  # the same with the normaliser only: [{text, normalized}]
//
// kokoro-js does not export its phonemize() nor its normaliser, so this script
// loads a copy of the published dist/kokoro.js with two tiny, checked edits:
// the module's phonemize function is exported, and the inline normaliser is
// also stored on globalThis when it is first called. Nothing else changes, so
// the output is what KokoroTTS.generate() feeds to its tokenizer.
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const kokoroDir = join(here, "node_modules", "kokoro-js");

async function loadKokoro() {
  const pkg = JSON.parse(await readFile(join(kokoroDir, "package.json"), "utf8"));
  if (pkg.version !== "1.2.1") {
    throw new Error(`kokoro-js ${pkg.version} installed, the golden files need 1.2.1 (run npm ci)`);
  }
  const phonemizerPkg = JSON.parse(await readFile(join(here, "node_modules", "phonemizer", "package.json"), "utf8"));
  let src = await readFile(join(kokoroDir, "dist", "kokoro.js"), "utf8");
  const edits = [
    // Keep a handle on the inline normaliser (an anonymous function expression).
    ["t&&(e=function(e){return e.replace", "t&&(e=(globalThis.__kokoroNormalize=function(e){return e.replace"],
    [".trim()}(e));", ".trim()})(e));"],
    // m is the module's phonemize(text, language = "a", norm = true).
    ["async function m(e,a=\"a\",t=!0){", "export async function __kokoroPhonemize(e,a,t){return m(e,a,t)}async function m(e,a=\"a\",t=!0){"],
  ];
  for (const [from, to] of edits) {
    const n = src.split(from).length - 1;
    if (n !== 1) throw new Error(`expected exactly one ${JSON.stringify(from)} in kokoro-js dist, found ${n}`);
    src = src.replace(from, () => to);
  }
  const patched = join(kokoroDir, "dist", "kokoro.golden.mjs");
  await writeFile(patched, src);
  const mod = await import(pathToFileURL(patched).href);
  await mod.__kokoroPhonemize("warm up", "a"); // defines globalThis.__kokoroNormalize
  const normalize = globalThis.__kokoroNormalize;
  if (typeof normalize !== "function") throw new Error("normaliser not captured");
  return { phonemize: mod.__kokoroPhonemize, normalize, versions: { "kokoro-js": pkg.version, phonemizer: phonemizerPkg.version } };
}

async function main() {
  const k = await loadKokoro();
  const normalizeOnly = process.argv.includes("--check-normalize");
  if (normalizeOnly || process.argv.includes("--check")) {
    let input = "";
    for await (const chunk of process.stdin) input += chunk;
    const out = [];
    for (const text of JSON.parse(input)) {
      const row = { text, normalized: k.normalize(text) };
      if (!normalizeOnly) {
        row.a = await k.phonemize(text, "a");
        row.b = await k.phonemize(text, "b");
      }
      out.push(row);
    }
    process.stdout.write(JSON.stringify(out, null, 1) + "\n");
    return;
  }
  const sentences = JSON.parse(await readFile(join(here, "sentences.json"), "utf8"));
  const outDir = join(here, "..", "..", "pkg", "phonemize", "testdata", "golden");
  await mkdir(outDir, { recursive: true });
  const header = { generator: "scripts/golden-phonemes/golden.mjs", ...k.versions };
  const norm = { ...header, cases: sentences.map(({ id, text }) => ({ id, text, normalized: k.normalize(text) })) };
  await writeFile(join(outDir, "normalize.json"), JSON.stringify(norm, null, 2) + "\n");
  for (const [lang, code] of [["en-us", "a"], ["en-gb", "b"]]) {
    const cases = [];
    for (const { id, text } of sentences) cases.push({ id, text, phonemes: await k.phonemize(text, code) });
    await writeFile(join(outDir, `${lang}.json`), JSON.stringify({ ...header, language: lang, kokoro_language: code, cases }, null, 2) + "\n");
  }
  console.log(`wrote ${sentences.length} cases x 2 languages to ${outDir}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
