// Opens the admin dashboard of a live `citadel up --admin-token T` in Debian's chromium (driven by
// playwright-core, which downloads no browser of its own) and prints what a user sees there as
// JSON: the page without the token, then through /?token=T; every model's and service's phase,
// the GPUs and their holders, the in-place refresh, the traffic charts and per-target counts
// before and after requests sent through the gateway, and the playground's answers to a code
// question and to an image; last, a model applied then (POST /api/v1/apply with the apply body
// given), its row watched from Downloading to Ready.
//
// Usage: node dashboard.mjs <chromium> <out dir> <admin URL> <gateway URL> <token> <model> <apply body>
// The out dir receives the browser's profile (--user-data-dir) and dashboard.png.
// Every wait is bounded: a condition that does not come true is reported, not thrown.
// See test/interop TestUp.
import { chromium } from "playwright-core";
import { join } from "node:path";

const [executablePath, outDir, admin, gateway, token, model, applyBody] = process.argv.slice(2);
if (!applyBody) {
  console.error("usage: node dashboard.mjs <chromium> <out dir> <admin URL> <gateway URL> <token> <model> <apply body>");
  process.exit(2);
}
// a 1×1 PNG
const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==", "base64");
const codePrompt = "Why does this fail? def f(x): return x +";
const out = { errors: [], failedResponses: [], steps: {} };
const t0 = Date.now();
const step = (name) => { out.steps[name] = Date.now() - t0; };

const context = await chromium.launchPersistentContext(join(outDir, "profile"), {
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1280, height: 900 },
  timeout: 30_000,
});
context.setDefaultTimeout(15_000);
const page = context.pages()[0] ?? (await context.newPage());
try {
  step("launched");
  // Without the token: no dashboard (and no cookie yet in this fresh profile).
  const p = await context.newPage();
  const denied = await p.goto(admin + "/");
  out.token = { withoutStatus: denied.status(), withoutHasModels: (await p.locator("section#models").count()) > 0 };
  await p.close();
  step("denied");

  page.on("pageerror", (e) => out.errors.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    // Chromium asks every page for /favicon.ico; the dashboard has none to offer.
    if (m.type() === "error" && !m.location().url.endsWith("/favicon.ico")) out.errors.push(`console: ${m.text()} (${m.location().url})`);
  });
  page.on("response", (r) => { if (r.status() >= 400) out.failedResponses.push(`${r.status()} ${r.request().method()} ${r.url()}`); });

  // The link citadel up prints: it sets the dashboard's cookie and redirects to /.
  const first = await page.goto(admin + "/?token=" + encodeURIComponent(token));
  out.status = first.status();
  out.initial = await snapshot(page);

  // In place: the page keeps what the user typed and its own state across refreshes.
  await page.fill("#playground-form textarea[name=prompt]", "kept across refreshes");
  await page.evaluate(() => { window.citadelTestMarker = true; });
  const r0 = out.initial.refreshes;
  out.refreshed = await waitUntil(page, (n) => Number(document.body.dataset.refreshes) >= n + 2, r0, 15_000);
  out.afterRefresh = {
    refreshes: await refreshes(page),
    prompt: await page.inputValue("#playground-form textarea[name=prompt]"),
    sameDocument: await page.evaluate(() => window.citadelTestMarker === true),
  };

  step("refreshed");
  // Traffic: requests sent through the gateway show in the per-target counts and the charts.
  const before = await snapshot(page);
  out.sent = [];
  for (const content of [codePrompt, codePrompt, codePrompt, "Write a two-line poem about the sea.", "Write a two-line poem about the sea.", "Write a two-line poem about the sea."]) {
    const r = await fetch(gateway + "/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "auto", max_tokens: 8, messages: [{ role: "user", content }] }),
    });
    await r.arrayBuffer();
    out.sent.push({ status: r.status, route: r.headers.get("x-citadel-route") });
  }
  const sentTotal = out.sent.length;
  out.trafficShown = await waitUntil(page, ({ total, points }) => {
    let sum = 0;
    for (const td of document.querySelectorAll("section#routes tr[data-route] td.requests")) sum += Number(td.textContent.trim()) || 0;
    const grown = [...document.querySelectorAll("section#charts svg[data-chart]")]
      .every((svg) => Number(svg.dataset.points) > (points[svg.dataset.chart] ?? 0));
    return sum >= total && grown;
  }, { total: sum(before.routes) + sentTotal, points: before.charts }, 30_000);
  out.before = { routes: before.routes, charts: before.charts };
  const after = await snapshot(page);
  out.after = { routes: after.routes, charts: after.charts };

  step("traffic");
  // The playground: a code question, then an image.
  out.playground = {};
  out.playground.code = await play(page, codePrompt, null);
  out.playground.vision = await play(page, "What is in this image?", { name: "dot.png", mimeType: "image/png", buffer: png });
  out.final = await snapshot(page);
  step("playground");

  // A model applied now, its download throttled by the mirror: its row shows the progress move.
  out.download = await watchDownload(page);
  step("download");
} catch (e) {
  // reported, not thrown: the test says which step failed beside what was seen before it
  out.fatal = (e.stack ?? String(e)).split("\n").slice(0, 3).join(" ");
} finally {
  try {
    await page.screenshot({ path: join(outDir, "dashboard.png"), fullPage: true, timeout: 10_000 });
    out.screenshot = join(outDir, "dashboard.png");
  } catch (e) {
    out.errors.push(`screenshot: ${e.message}`);
  }
  await context.close();
}
console.log(JSON.stringify(out));

// snapshot reads the contract's elements: models, services, GPUs, routes, charts, refreshes.
async function snapshot(page) {
  return page.evaluate(() => {
    const text = (el, sel) => el.querySelector(sel)?.textContent.trim() ?? null;
    const rows = (sel) => [...document.querySelectorAll(sel)];
    return {
      refreshes: Number(document.body.dataset.refreshes),
      models: Object.fromEntries(rows("section#models tr[data-model]").map((tr) => [tr.dataset.model, text(tr, "td.phase")])),
      services: Object.fromEntries(rows("section#services tr[data-service]").map((tr) => [tr.dataset.service,
        { phase: text(tr, "td.phase"), log: text(tr, "pre.log") ?? "" }])),
      gpus: Object.fromEntries(rows("section#gpus [data-gpu]").map((g) => [g.dataset.gpu,
        [...g.querySelectorAll("[data-holder]")].map((h) => h.dataset.holder)])),
      routes: rows("section#routes tr[data-route][data-target]").map((tr) => ({
        route: tr.dataset.route, target: tr.dataset.target,
        requests: Number(text(tr, "td.requests")), share: text(tr, "td.share"),
      })),
      charts: Object.fromEntries(rows("section#charts svg[data-chart]").map((svg) => [svg.dataset.chart, Number(svg.dataset.points)])),
      slos: rows("section#slos tr[data-slo]").map((tr) => ({ slo: tr.dataset.slo, objective: text(tr, "td.objective"), verdict: text(tr, "td.verdict") })),
      events: rows("section#events li[data-reason]").map((li) => li.dataset.reason),
    };
  });
}

async function refreshes(page) {
  return page.evaluate(() => Number(document.body.dataset.refreshes));
}

function sum(routes) {
  return routes.reduce((s, r) => s + (r.requests || 0), 0);
}

// waitUntil waits for fn(arg) to be true in the page, at most ms; it reports whether it came true.
async function waitUntil(page, fn, arg, ms) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms, polling: 100 });
    return true;
  } catch (e) {
    if (e.name === "TimeoutError") return false;
    throw e;
  }
}

// play types a prompt (and attaches an image), submits the playground and reads its result once
// the answer of POST /api/v1/playground is shown.
async function play(page, prompt, image) {
  await page.fill("#playground-form textarea[name=prompt]", prompt);
  await page.setInputFiles("#playground-form input[type=file][name=image]", image ? [image] : []);
  let response;
  try {
    [response] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === "/api/v1/playground" && r.request().method() === "POST", { timeout: 30_000 }),
      page.locator("#playground-form button[type=submit]").click({ noWaitAfter: true }),
    ]);
  } catch (e) {
    return { error: `no POST /api/v1/playground after the click: ${e.message.split("\n")[0]}`, url: page.url() };
  }
  const api = await response.json().catch(() => null);
  const shown = await waitUntil(page, (want) => {
    const f = (name) => document.querySelector(`#playground-result [data-field=${name}]`)?.textContent.trim();
    return f("status") === String(want.status) && f("route") === (want.route ?? "") && f("answer") === (want.answer ?? "");
  }, { status: api?.status, route: api?.route, answer: api?.answer }, 10_000);
  const fields = await page.evaluate(() => Object.fromEntries(
    [...document.querySelectorAll("#playground-result [data-field]")].map((el) => [el.dataset.field, el.textContent.trim()])));
  return { httpStatus: response.status(), api, shown, fields };
}

// watchDownload applies the model and reads its row every 100 ms, keeping each change of phase
// or progress, until it is Ready or Failed (at most 60 s).
async function watchDownload(page) {
  const d = { seen: [] };
  const r = await fetch(admin + "/api/v1/apply", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer " + token },
    body: applyBody,
  });
  d.applyStatus = r.status;
  if (!r.ok) {
    d.applyError = await r.text();
    return d;
  }
  const start = Date.now();
  let last = "";
  while (Date.now() - start < 60_000) {
    const row = await page.evaluate((name) => {
      const tr = [...document.querySelectorAll("section#models tr[data-model]")].find((tr) => tr.dataset.model === name);
      if (!tr) return null;
      const bar = tr.querySelector("progress");
      const text = tr.querySelector("td.progress")?.textContent.trim() ?? "";
      const m = text.match(/(\d+(?:\.\d+)?)\s*%/);
      const percent = bar && bar.max > 0 && bar.hasAttribute("value") ? (100 * bar.value) / bar.max : m ? Number(m[1]) : null;
      return { phase: tr.querySelector("td.phase")?.textContent.trim() ?? "", percent, progress: text };
    }, model);
    if (row) {
      const key = JSON.stringify(row);
      if (key !== last) {
        last = key;
        d.seen.push({ ms: Date.now() - start, ...row });
      }
      if (row.phase === "Ready" || row.phase === "Failed") {
        if (row.phase === "Ready") d.readyMs = Date.now() - start;
        break;
      }
    }
    await page.waitForTimeout(100);
  }
  return d;
}
