#!/usr/bin/env node
// Plays the user in headless Chromium against oidc_server.js's real pages
// (oidc-provider devInteractions), for spec/browser_spec.lua.
//
// Usage:  node browser_login.js <url> [--user NAME] [--deny] [--device-code CODE]
//   <url>          the authorize URL lua-msal opened (authorization code flow), or
//                  with --device-code the verification URI (http://127.0.0.1:P/device)
//   --user NAME    the login name typed on the sign-in page (default "alice");
//                  becomes the id token's `sub`
//   --deny         click "[ Cancel ]" on the consent page (the redirect then
//                  carries error=access_denied), or "[ Abort ]" on the device
//                  confirm page
//   --device-code  enter CODE on the user-code page, confirm, sign in, consent,
//                  and stop at "Sign-in Success"
//   --forge        first visit the URL's redirect_uri with a made-up code and
//                  state, as a hostile page would; prints "forged: <status>"
//   --replay       after landing on the redirect, load it once more, as a reload
//                  or a replaying page would; prints "replay: <status or error>"
//
// Exits 0 once the browser has landed on (and loaded) a loopback redirect that
// is not the provider itself (our listener's page), or, for the device flow,
// the provider's success page (or, with --deny, the page after the abort).
// Exits 1 with a message on stderr on anything else; a hard 30 s timeout
// (env BROWSER_LOGIN_TIMEOUT_MS) kills the browser and exits 2.
//
// The browser is the Debian package `chromium` at /usr/bin/chromium (env
// CHROMIUM overrides); playwright-core only drives it and never downloads one.
// Every run uses a fresh temporary profile, so no session cookie survives.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");

const TIMEOUT_MS = Number.parseInt(process.env.BROWSER_LOGIN_TIMEOUT_MS || "30000", 10);
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const DEBUG = !!process.env.BROWSER_LOGIN_DEBUG;
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

function usage(msg) {
  if (msg) process.stderr.write(`browser_login: ${msg}\n`);
  process.stderr.write("usage: node browser_login.js <url> [--user NAME] [--deny] [--device-code CODE] [--forge] [--replay]\n");
  process.exit(1);
}

function parseArgs(argv) {
  const o = { user: "alice", deny: false, deviceCode: null, url: null, forge: false, replay: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--user") { o.user = argv[++i]; if (!o.user) usage("--user needs a value"); }
    else if (a === "--deny") o.deny = true;
    else if (a === "--forge") o.forge = true;
    else if (a === "--replay") o.replay = true;
    else if (a === "--device-code") { o.deviceCode = argv[++i]; if (!o.deviceCode) usage("--device-code needs a value"); }
    else if (a.startsWith("--")) usage(`unknown option ${a}`);
    else if (o.url === null) o.url = a;
    else usage(`unexpected argument ${a}`);
  }
  if (!o.url) usage("no URL");
  try { new URL(o.url); } catch { usage(`not a URL: ${o.url}`); }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const providerOrigin = new URL(opts.url).origin;

let browser = null;
let profile = null;
function cleanup() {
  if (profile) {
    try { fs.rmSync(profile, { recursive: true, force: true }); } catch { /* best effort */ }
    profile = null;
  }
}

async function finish(code, msg) {
  clearTimeout(hardTimer);
  if (msg) (code === 0 ? process.stdout : process.stderr).write(`browser_login: ${msg}\n`);
  const b = browser;
  browser = null;
  if (b) {
    // never hang in close(): the hard kill below is the backstop
    await Promise.race([b.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  }
  cleanup();
  process.exit(code);
}

const hardTimer = setTimeout(() => {
  process.stderr.write(`browser_login: timed out after ${TIMEOUT_MS} ms\n`);
  try { if (browser) { const p = browser.process && browser.process(); if (p) p.kill("SIGKILL"); } } catch { /* ignore */ }
  cleanup();
  process.exit(2);
}, TIMEOUT_MS);

function isLoopbackRedirect(u) {
  let url;
  try { url = new URL(u); } catch { return false; }
  return url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname) && url.origin !== providerOrigin;
}

async function describePage(page) {
  const title = await page.title().catch(() => "");
  const body = await page.evaluate(() => document.body ? document.body.innerText : "").catch(() => "");
  return `${page.url()} title=${JSON.stringify(title)} text=${JSON.stringify(body.slice(0, 400))}`;
}

// Runs action (a click) and waits for the main frame's next committed
// navigation and its load event. Redirect chains (303s) commit once.
async function act(page, action) {
  const nav = page.waitForEvent("framenavigated", { predicate: (f) => f === page.mainFrame(), timeout: TIMEOUT_MS });
  await action();
  await nav;
  await page.waitForLoadState("load", { timeout: TIMEOUT_MS });
}

async function main() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found (scripts/setup installs the Debian package chromium)`);
  }
  const { chromium } = require("playwright-core");
  profile = fs.mkdtempSync(path.join(os.tmpdir(), "browser-login-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: TIMEOUT_MS,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  const page = browser.pages()[0] || await browser.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  if (opts.forge) {
    const target = new URL(new URL(opts.url).searchParams.get("redirect_uri"));
    target.search = "?code=forged-code&state=forged-state";
    const forged = await page.goto(target.href, { waitUntil: "load" });
    process.stdout.write(`browser_login: forged: ${forged ? forged.status() : "no response"}\n`);
  }
  const resp = await page.goto(opts.url, { waitUntil: "load" });
  if (!resp) throw new Error(`no response for ${opts.url}`);

  const seen = [];
  for (let step = 0; step < 12; step++) {
    const here = page.url();
    seen.push(new URL(here).pathname);
    if (isLoopbackRedirect(here)) {
      const text = await describePage(page);
      if (opts.replay) {
        const again = await page.goto(here, { waitUntil: "load" }).then(
          (r) => (r ? String(r.status()) : "no response"), (e) => e.message.split("\n")[0]);
        process.stdout.write(`browser_login: replay: ${again}\n`);
      }
      return finish(0, `landed on the loopback redirect: ${text}`);
    }
    if (!here.startsWith(providerOrigin)) {
      throw new Error(`unexpected page: ${await describePage(page)}`);
    }
    if (DEBUG) process.stderr.write(`browser_login: at ${here}\n`);
    const h1 = ((await page.locator("h1").first().textContent({ timeout: 2000 }).catch(() => "")) || "").trim();
    const prompt = await page.locator("input[name=prompt]").first().getAttribute("value", { timeout: 500 }).catch(() => null);

    if (prompt === "login") {
      await page.fill("input[name=login]", opts.user);
      await page.fill("input[name=password]", "x");
      await act(page, () => page.click("button[type=submit]"));
    } else if (prompt === "consent") {
      if (opts.deny) {
        await act(page, () => page.click("a[href$='/abort']"));
      } else {
        await act(page, () => page.click("button[type=submit]"));
      }
    } else if (await page.locator("form[id='op.deviceInputForm']").count() > 0) {
      if (!opts.deviceCode) throw new Error("the user-code page showed up without --device-code");
      await page.fill("form[id='op.deviceInputForm'] input[name=user_code]", opts.deviceCode);
      await act(page, () => page.click("button[form='op.deviceInputForm']"));
    } else if (await page.locator("form[id='op.deviceConfirmForm']").count() > 0) {
      if (opts.deny) {
        await act(page, () => page.click("button[form='op.deviceConfirmForm'][name=abort]"));
        return finish(0, `device flow aborted: ${await describePage(page)}`);
      }
      await act(page, () => page.click("button[form='op.deviceConfirmForm'][autofocus]"));
    } else if (/sign-in success/i.test(h1)) {
      if (!opts.deviceCode) throw new Error(`"Sign-in Success" outside the device flow: ${await describePage(page)}`);
      return finish(0, "device flow approved (Sign-in Success)");
    } else {
      throw new Error(`page not recognised (after ${seen.join(" -> ")}): ${await describePage(page)}`);
    }
  }
  throw new Error(`too many pages: ${seen.join(" -> ")}`);
}

main().catch((e) => finish(1, `failed: ${e && e.message ? e.message.split("\n")[0] : e}`));
