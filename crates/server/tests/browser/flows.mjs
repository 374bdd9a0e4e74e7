// Wardgate's pages in headless Chromium, as a person uses them:
//   1. the first administrator enrolls a passkey (Chromium's virtual authenticator),
//      signs out, and signs in with the passkey alone; then signs in with a copy of that
//      passkey (its signature counter behind the server's), which is let through with a
//      warning on the account page (issue 3 item 4);
//   2. an invited user enrolls a passphrase and an authenticator app, signs out, and
//      signs in with passphrase + code;
//   3. when a client application is given, that user (signed in at aal2) adds a security key
//      on the account page, signs in again with passphrase + code, and is sent by the
//      application with acr_values=urn:wardgate:aal3: the sign-in page asks only for the
//      key, and the browser lands on the application's callback with a code (issue 4
//      step-up); the application (in browser.rs) redeems it;
//   4. when a second server that refuses copied keys is given, its first administrator does
//      as in 1, and the copy's sign-in is refused;
//   5. after 3, the user reports the authenticator app lost and replaces it on the account
//      page, confirming with the security key (a challenge only that key may answer); the
//      lost app's code is then refused at sign-in and the new app's accepted (issue 8);
//   6. after 5, the user has lost the phone and the key: the help desk (browser.rs serves
//      it) opens and approves a recovery; the one-time link enrolls a new security key,
//      works once, and the user signs in with passphrase and the new key alone — the lost
//      app and key were retired with the link (issue 8).
// Run by crates/server/tests/browser.rs, which starts the server and checks the audit log
// afterwards. Inputs come from the environment:
//   WARDGATE_BASE_URL       http://localhost:PORT (WebAuthn refuses IP addresses as RP ids)
//   WARDGATE_BOOTSTRAP_URL  the first start's one-time bootstrap link
//   WARDGATE_ENROLL_URL     the invited user's enrollment link
//   WARDGATE_ADMIN, WARDGATE_USER, WARDGATE_PASSPHRASE
//   WARDGATE_OIDC_CLIENT_ID optional: a confidential client registered for scenario 3, with
//   WARDGATE_OIDC_REDIRECT_URI (its callback, served by browser.rs), WARDGATE_OIDC_STATE,
//   WARDGATE_OIDC_NONCE, WARDGATE_OIDC_CODE_CHALLENGE (S256)
//   WARDGATE_REFUSING_BASE_URL, WARDGATE_REFUSING_BOOTSTRAP_URL
//                           optional: a second server with
//                           auth.webauthn_refuse_counter_regression = true (scenario 4)
//   WARDGATE_SCREENSHOTS    optional folder for a screenshot of the page that failed
//   WARDGATE_CHROMIUM       optional, default /usr/bin/chromium
// Exits 0 when every step behaved; otherwise prints the step, the page and its text.

import { createHmac } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === "") {
    console.error(`flows.mjs: ${name} is not set`);
    process.exit(2);
  }
  return v;
};

const BASE = env("WARDGATE_BASE_URL").replace(/\/$/, "");
const BOOTSTRAP_URL = env("WARDGATE_BOOTSTRAP_URL");
const ENROLL_URL = env("WARDGATE_ENROLL_URL");
const ADMIN = env("WARDGATE_ADMIN", "rsmith");
const USER = env("WARDGATE_USER", "jdoe");
const PASSPHRASE = env("WARDGATE_PASSPHRASE");
const CHROMIUM = env("WARDGATE_CHROMIUM", "/usr/bin/chromium");
const TIMEOUT_MS = 15_000;

// The servers the passkey scenario runs against: the default configuration, and optionally
// one that refuses a key whose signature counter went backwards.
const DEFAULT_SERVER = { name: "administrator", base: BASE, bootstrapUrl: BOOTSTRAP_URL, refusesCopies: false };
const REFUSING_BASE = process.env.WARDGATE_REFUSING_BASE_URL;
const REFUSING_SERVER = REFUSING_BASE && {
  name: "administrator (node refusing copied keys)",
  base: REFUSING_BASE.replace(/\/$/, ""),
  bootstrapUrl: env("WARDGATE_REFUSING_BOOTSTRAP_URL"),
  refusesCopies: true,
};

// The application of scenario 3, if the Rust side registered one.
const CLIENT_ID = process.env.WARDGATE_OIDC_CLIENT_ID;
const OIDC = CLIENT_ID && {
  clientId: CLIENT_ID,
  redirectUri: env("WARDGATE_OIDC_REDIRECT_URI"),
  state: env("WARDGATE_OIDC_STATE"),
  nonce: env("WARDGATE_OIDC_NONCE"),
  codeChallenge: env("WARDGATE_OIDC_CODE_CHALLENGE"),
};

// --- TOTP (RFC 6238 over RFC 4226), written here from the RFCs rather than taken from
// Wardgate, so that a shared misreading cannot make both sides agree.

function base32Decode(s) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const clean = s.toUpperCase().replace(/[\s=-]/g, "");
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of clean) {
    const i = alphabet.indexOf(ch);
    if (i < 0) throw new Error(`not base32: ${JSON.stringify(s)}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

const STEP_SECS = 30;
const currentStep = () => Math.floor(Date.now() / 1000 / STEP_SECS);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The first time step after `last` the server takes: a code works once (so a later step than
// the last one accepted), and the server allows one step of drift either way (so at most one
// step ahead of the clock). Waits, at most a step, when `last` is itself the next step.
async function stepAfter(last) {
  if (currentStep() < last) {
    const wait = Math.ceil(last * STEP_SECS - Date.now() / 1000);
    console.log(`flows: waiting ${wait} s for the next TOTP time step (each code works once)`);
    while (currentStep() < last) await sleep(250);
  }
  return Math.max(currentStep(), last + 1);
}

function totp(secret, step, digits = 6) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", secret).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const bin = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(bin % 10 ** digits).padStart(digits, "0");
}

// The RFC's own vector (Appendix B, T = 59 s, 8 digits) guards the helper itself.
if (totp(Buffer.from("12345678901234567890"), Math.floor(59 / 30), 8) !== "94287082") {
  throw new Error("the test's own TOTP does not match RFC 6238 Appendix B");
}

// --- what a person sees

let step = "starting";
const say = (msg) => {
  step = msg;
  console.log(`flows: ${msg}`);
};

class Mismatch extends Error {}

function check(cond, what) {
  if (!cond) throw new Mismatch(what);
}

async function heading(page, name) {
  await page.getByRole("heading", { level: 1, name, exact: true }).waitFor({ timeout: TIMEOUT_MS });
}

async function sees(page, text) {
  await page.getByText(text).first().waitFor({ timeout: TIMEOUT_MS });
}

async function lead(page) {
  return (await page.locator("p.lead").first().innerText()).trim();
}

async function at(page, path) {
  await page.waitForURL((u) => u.pathname === path, { timeout: TIMEOUT_MS });
}

// Every input a person types into has a label on screen (the accessibility rule);
// checked on each page, not just where this script happens to type.
async function labelsAreVisible(page) {
  const bare = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea")]
      // Inputs folded away (a closed <details>) are checked once the script opens them.
      .filter((el) => el.type !== "hidden" && el.checkVisibility())
      .filter((el) => ![...el.labels].some((l) => l.checkVisibility() && l.innerText.trim() !== ""))
      .map((el) => el.outerHTML),
  );
  check(bare.length === 0, `${page.url()}: inputs without a visible label: ${bare.join(" ")}`);
}

// The page's own error box, if the server refused something: the most useful fact on failure.
async function noErrorShown(page) {
  const errors = await page.locator("[role=alert]:not(.hidden)").allInnerTexts();
  check(errors.length === 0, `${page.url()} shows an error: ${errors.join(" | ")}`);
}

async function recoveryCodes(page) {
  await heading(page, "Your recovery codes");
  const codes = await page.locator("#recovery-codes li").allInnerTexts();
  check(codes.length === 10, `expected 10 recovery codes, saw ${codes.length}: ${codes.join(", ")}`);
  check(new Set(codes).size === 10, `recovery codes repeat: ${codes.join(", ")}`);
  await page.getByRole("link", { name: "Continue to your account" }).click();
  await at(page, "/account");
  await heading(page, "Your account");
}

async function signOut(page, base = BASE) {
  await page.locator("#sign-out").click();
  await at(page, "/");
  await heading(page, "Sign in");
  await sees(page, "You are signed out.");
  // The session is gone server-side too: the account page sends the browser back.
  await page.goto(`${base}/account`);
  await at(page, "/");
  await heading(page, "Sign in");
}

// Each scenario is a separate person: a fresh context, so no cookie carries over.
const pages = [];
const logs = [];
async function openPage(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  page.on("console", (m) => logs.push(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`page error: ${e.message}`));
  page.on("response", (r) => r.status() >= 400 && logs.push(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`));
  page.on("requestfailed", (r) => logs.push(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  pages.push(page);
  return { context, page };
}

// --- scenario 1 (and 3): the first administrator, with a passkey, then a copy of it

// After a passkey button: the account page, or the refusal the page's script shows. Waiting
// for either fails fast, with the server's words, instead of timing out on the wrong one.
async function passkeyOutcome(page) {
  const refusal = page.locator("#webauthn-error:not(.hidden)");
  const account = page.getByRole("heading", { level: 1, name: "Your account", exact: true });
  await refusal.or(account).first().waitFor({ timeout: TIMEOUT_MS });
  return (await refusal.isVisible()) ? (await refusal.innerText()).trim() : null;
}

// What a copied key looks like to the server (WebAuthn §6.1.1): the same private key, on a
// device whose signature counter is behind the one the server last saw. The virtual
// authenticator becomes that copy when its credential is put back with a counter of 0.
// Returns the counter the genuine key had reached.
async function copyTheKey(cdp, authenticatorId) {
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  check(credentials.length === 1, `the authenticator holds ${credentials.length} credentials, expected 1`);
  const genuine = credentials[0];
  check(genuine.signCount > 0, `the passkey's counter is ${genuine.signCount}; a copy can only lag a used key`);
  await cdp.send("WebAuthn.removeCredential", { authenticatorId, credentialId: genuine.credentialId });
  await cdp.send("WebAuthn.addCredential", { authenticatorId, credential: { ...genuine, signCount: 0 } });
  const { credentials: now } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  check(
    now.length === 1 && now[0].credentialId === genuine.credentialId && now[0].signCount === 0,
    `the copied credential did not take: ${JSON.stringify(now.map((c) => [c.credentialId, c.signCount]))}`,
  );
  return genuine.signCount;
}

// A security key plugged into the page's browser: Chromium's virtual authenticator, with
// user verification and discoverable credentials, and not backup-eligible (hardware-bound,
// so it reaches aal3). The DevTools session and the authenticator's id.
async function securityKey(context, page) {
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "usb",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

async function passkeyScenario(browser, server) {
  const { context, page } = await openPage(browser);
  const who = server.name;

  const { cdp, authenticatorId } = await securityKey(context, page);

  say(`${who}: bootstrap page`);
  await page.goto(server.bootstrapUrl.replace("//127.0.0.1:", "//localhost:"));
  await heading(page, "Enroll the first administrator");
  await labelsAreVisible(page);
  await page.getByLabel("Username", { exact: true }).fill(ADMIN);
  await page.getByLabel("Full name", { exact: true }).fill("Rita Smith");
  await page.getByLabel("Passphrase", { exact: true }).fill(PASSPHRASE);
  await page.getByLabel("Passphrase again", { exact: true }).fill(PASSPHRASE);
  await page.getByRole("button", { name: "Create administrator" }).click();

  say(`${who}: enrollment, register a passkey`);
  await at(page, "/enroll/steps");
  await heading(page, "Set up your account");
  await noErrorShown(page);
  await sees(page, "Passphrase set.");
  check(
    (await page.getByRole("button", { name: "Finish and show recovery codes" }).count()) === 0,
    "enrollment offers to finish with a passphrase alone",
  );
  await labelsAreVisible(page);
  await page.getByRole("button", { name: "Register a security key or passkey" }).click();
  // The script reloads the steps page once the server has the credential.
  try {
    await page.getByText("Added:").waitFor({ timeout: TIMEOUT_MS });
  } catch (e) {
    await noErrorShown(page);
    throw e;
  }
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  check(credentials.length === 1, `the authenticator holds ${credentials.length} credentials, expected 1`);
  check(credentials[0].isResidentCredential, "the passkey is not discoverable (resident)");

  say(`${who}: finish enrollment`);
  await page.getByRole("button", { name: "Finish and show recovery codes" }).click();
  await recoveryCodes(page);
  const enrolled = await lead(page);
  check(/Signed in at aal3 with /.test(enrolled), `after enrollment: "${enrolled}", expected aal3`);

  say(`${who}: sign out`);
  await signOut(page, server.base);
  await labelsAreVisible(page);

  say(`${who}: sign in with the passkey, no username typed`);
  await page.getByRole("button", { name: "Sign in with a security key or passkey" }).click();
  const refused = await passkeyOutcome(page);
  check(refused === null, `the genuine passkey was refused: "${refused}"`);
  await at(page, "/account");
  const signedIn = await lead(page);
  check(/Signed in at aal3 with .*\bhwk\b/.test(signedIn), `after passkey sign-in: "${signedIn}", expected aal3 with hwk`);
  await sees(page, `Rita Smith (${ADMIN})`);
  const noWarning = await page.getByText("may have been copied").count();
  check(noWarning === 0, "the account page warns of a copied key before any copy was used");
  const after = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  check(after.credentials[0].signCount > credentials[0].signCount, "the passkey's signature counter did not move");

  say(`${who}: sign out, copy the passkey, sign in with the copy`);
  await signOut(page, server.base);
  const genuineCount = await copyTheKey(cdp, authenticatorId);
  await page.getByRole("button", { name: "Sign in with a security key or passkey" }).click();
  const refusal = await passkeyOutcome(page);
  let copy;
  if (server.refusesCopies) {
    check(refusal !== null, `a copied passkey (counter ${genuineCount} -> 0) was let in: ${page.url()}`);
    check(refusal !== "", "the copied passkey was refused with an empty error");
    // Refused means no session: the account page still sends the browser back.
    await page.goto(`${server.base}/account`);
    await at(page, "/");
    await heading(page, "Sign in");
    copy = `copy refused: "${refusal}"`;
  } else {
    check(refusal === null, `a copied passkey (counter ${genuineCount} -> 0) was refused: "${refusal}"`);
    await at(page, "/account");
    copy = await lead(page);
    check(/Signed in at aal3 with .*\bhwk\b/.test(copy), `after the copy's sign-in: "${copy}", expected aal3 with hwk`);
    // account.rs words it; the person is told to act.
    const warning = page.locator("p.warning").filter({ hasText: "may have been copied" });
    try {
      await warning.waitFor({ timeout: TIMEOUT_MS });
    } catch {
      const shown = await page.locator("p.warning").allInnerTexts();
      throw new Mismatch(`no warning of a copied key on /account; warnings shown: ${JSON.stringify(shown)}`);
    }
    const text = (await warning.innerText()).trim();
    check(/help desk/.test(text), `the copied-key warning does not say whom to tell: "${text}"`);
    copy = `copy let in with a warning: "${text}"`;
  }
  await context.close();
  return `${signedIn}\n    ${copy}`;
}

// --- scenario 2: an invited user, with a passphrase and an authenticator app

async function totpScenario(browser) {
  const { context, page } = await openPage(browser);

  say("user: enrollment link, choose a passphrase");
  await page.goto(ENROLL_URL.replace("//127.0.0.1:", "//localhost:"));
  await at(page, "/enroll/steps");
  await heading(page, "Set up your account");
  await labelsAreVisible(page);
  await page.getByLabel("Passphrase", { exact: true }).fill(PASSPHRASE);
  await page.getByLabel("Passphrase again", { exact: true }).fill(PASSPHRASE);
  await page.getByRole("button", { name: "Save passphrase" }).click();
  await at(page, "/enroll/steps");
  await noErrorShown(page);
  await sees(page, "Passphrase set.");

  say("user: add an authenticator app");
  await page.getByRole("button", { name: "Use an authenticator app instead" }).click();
  await page.locator(".qr svg").waitFor();
  const secret = base32Decode(await page.locator("code.secret").innerText());
  check(secret.length >= 16, `the TOTP secret has ${secret.length} bytes, expected at least 16 (RFC 4226 §4)`);
  await labelsAreVisible(page);
  const enrolledStep = currentStep();
  await page.getByLabel("Authentication code", { exact: true }).fill(totp(secret, enrolledStep));
  await page.getByRole("button", { name: "Confirm app" }).click();
  await at(page, "/enroll/steps");
  await noErrorShown(page);
  await sees(page, "Added:");

  say("user: finish enrollment");
  await page.getByRole("button", { name: "Finish and show recovery codes" }).click();
  await recoveryCodes(page);
  const enrolled = await lead(page);
  check(/Signed in at aal2 with /.test(enrolled), `after enrollment: "${enrolled}", expected aal2`);

  say("user: sign out");
  await signOut(page);

  say("user: sign in with passphrase and code");
  await page.getByLabel("Username", { exact: true }).fill(USER);
  await page.getByLabel("Passphrase", { exact: true }).fill(PASSPHRASE);
  await page.getByRole("button", { name: "Continue" }).click();
  await at(page, "/login/verify");
  await heading(page, "Confirm it is you");
  await noErrorShown(page);
  await labelsAreVisible(page);
  await page.getByText("Use a recovery code instead").click();
  await page.getByLabel("Recovery code", { exact: true }).waitFor();
  await labelsAreVisible(page);

  // A wrong code is refused in words a person understands, and the form stays usable.
  const good = (s) => totp(secret, s);
  let wrong = "000000";
  for (let s = enrolledStep - 2; s <= enrolledStep + 3; s++) if (good(s) === wrong) wrong = "999999";
  await page.getByLabel("Authentication code", { exact: true }).fill(wrong);
  await page.getByRole("button", { name: "Verify" }).click();
  await sees(page, "That was not accepted. Check the code and try again.");

  // The enrollment spent its time step (a code works once), so take the next one; the
  // server accepts one step of drift either way.
  const signInStep = Math.max(currentStep(), enrolledStep + 1);
  await page.getByLabel("Authentication code", { exact: true }).fill(good(signInStep));
  await page.getByRole("button", { name: "Verify" }).click();
  try {
    await at(page, "/account");
  } catch (e) {
    await noErrorShown(page);
    throw e;
  }
  await heading(page, "Your account");
  const signedIn = await lead(page);
  check(/Signed in at aal2 with .*\bpwd\b.*\botp\b/.test(signedIn), `after sign-in: "${signedIn}", expected aal2 with pwd, otp`);
  if (OIDC) {
    // Still signed in: the step-up scenario goes on from here, as the same person.
    signedInUser = { context, page, secret, lastStep: signInStep };
  } else {
    await context.close();
  }
  return signedIn;
}

// --- scenario 3: the same user adds a security key, then an application asks for aal3

// Set by the TOTP scenario when it ends signed in at aal2.
let signedInUser = null;

// Passphrase, then a code of `secret` at the first step after `lastStep`. With `refused`,
// first a current code of that (retired) app, which must be turned down.
async function signInWithCode(page, secret, lastStep, refused = null) {
  await page.getByLabel("Username", { exact: true }).fill(USER);
  await page.getByLabel("Passphrase", { exact: true }).fill(PASSPHRASE);
  await page.getByRole("button", { name: "Continue" }).click();
  await at(page, "/login/verify");
  if (refused) {
    await page.getByLabel("Authentication code", { exact: true }).fill(totp(refused, currentStep()));
    await page.getByRole("button", { name: "Verify" }).click();
    await sees(page, "That was not accepted. Check the code and try again.");
  }
  const codeStep = await stepAfter(lastStep);
  await page.getByLabel("Authentication code", { exact: true }).fill(totp(secret, codeStep));
  await page.getByRole("button", { name: "Verify" }).click();
  try {
    await at(page, "/account");
  } catch (e) {
    await noErrorShown(page);
    throw e;
  }
  await heading(page, "Your account");
}

// The factor table of the account page: each row's label and details.
async function factorRows(page) {
  return page.locator("#factors tbody tr").evaluateAll((rows) =>
    rows.map((r) => [...r.cells].slice(0, 2).map((c) => c.innerText.trim()).join(": ")),
  );
}

async function stepUpScenario() {
  check(signedInUser !== null, "skipped: the authenticator-app scenario did not end signed in");
  const { context, page, secret, lastStep } = signedInUser;

  const { cdp, authenticatorId } = await securityKey(context, page);

  say("user: add a security key on the account page");
  await page.goto(`${BASE}/account`);
  await heading(page, "Your account");
  const before = await factorRows(page);
  await page.locator("#add-factor").click();
  await at(page, "/enroll/steps");
  await heading(page, "Add a factor");
  await noErrorShown(page);
  await labelsAreVisible(page);
  await page.locator("#key-register").click();
  try {
    await page.getByText("Added:").waitFor({ timeout: TIMEOUT_MS });
  } catch (e) {
    await noErrorShown(page);
    throw e;
  }
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  check(credentials.length === 1, `the authenticator holds ${credentials.length} credentials, expected 1`);
  await page.getByRole("button", { name: "Save and return to your account" }).click();
  await at(page, "/account");
  await noErrorShown(page);
  await sees(page, "The new factor is saved");
  const after = await factorRows(page);
  const added = after.filter((r) => !before.includes(r));
  check(
    after.length === before.length + 1 && added.length === 1 && /^Security key:/.test(added[0]),
    `the account page does not list one new security key; before: ${JSON.stringify(before)}, after: ${JSON.stringify(after)}`,
  );
  check(!/synced passkey/.test(added[0]), `the new key is listed as a synced passkey, which cannot reach aal3: "${added[0]}"`);

  say("user: sign out, sign in again with passphrase and code");
  await signOut(page);
  await signInWithCode(page, secret, lastStep);
  const aal2 = await lead(page);
  check(/Signed in at aal2 with .*\bpwd\b.*\botp\b/.test(aal2), `after sign-in: "${aal2}", expected aal2 with pwd, otp`);

  say("user: the application asks for aal3");
  // What the browser asks for and where it goes, from here to the application's callback.
  const requests = [];
  const onRequest = (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`);
  page.on("request", onRequest);
  const callbackOrigin = new URL(OIDC.redirectUri).origin;
  const authorize = new URL(`${BASE}/oidc/authorize`);
  for (const [k, v] of Object.entries({
    response_type: "code",
    scope: "openid",
    client_id: OIDC.clientId,
    redirect_uri: OIDC.redirectUri,
    state: OIDC.state,
    nonce: OIDC.nonce,
    code_challenge: OIDC.codeChallenge,
    code_challenge_method: "S256",
    acr_values: "urn:wardgate:aal3",
  })) {
    authorize.searchParams.set(k, v);
  }
  await page.goto(authorize.href);
  await at(page, "/");
  await heading(page, "Sign in");
  check(new URL(page.url()).searchParams.get("step_up") === "1", `not sent to the step-up sign-in: ${page.url()}`);
  await noErrorShown(page);
  await sees(page, "This application needs a stronger sign-in");
  await labelsAreVisible(page);

  say("user: step up with the security key alone");
  // Not even offered: the person already gave passphrase and code, only the key is missing.
  for (const label of ["Username", "Passphrase"]) {
    const fields = await page.getByLabel(label, { exact: true }).count();
    check(fields === 0, `the step-up page asks for the ${label} again`);
  }
  await page.locator("#passkey-login").click();
  // The callback, or the refusal the page's script shows: either ends the wait, with words.
  const refusal = page.locator("#webauthn-error:not(.hidden)");
  const refused = await Promise.race([
    page.waitForURL((u) => u.origin === callbackOrigin, { timeout: TIMEOUT_MS }).then(() => null),
    refusal.waitFor({ timeout: TIMEOUT_MS }).then(async () => (await refusal.innerText()).trim()),
  ]).catch(async (e) => {
    // The sign-in page's refusal, if it is still the page shown, says more than a timeout.
    const shown = await page.locator("[role=alert]:not(.hidden)").allInnerTexts().catch(() => []);
    throw shown.length ? new Mismatch(`${page.url()} shows an error: ${shown.join(" | ")}`) : e;
  });
  check(refused === null, `the security key was refused at the step-up: "${refused}"`);
  // The application answered (browser.rs serves its callback and redeems the code).
  await heading(page, "Patient chart");
  page.off("request", onRequest);

  // Asked for nothing but the key: no passphrase form, no code page, no code sent.
  const typed = requests.filter(
    (r) =>
      /^POST \/login$/.test(r) ||
      /^\w+ \/login\/verify$/.test(r) ||
      /^POST \/api\/v1\/login\/(passphrase|totp|recovery-code)$/.test(r),
  );
  check(typed.length === 0, `the step-up asked for more than the key: ${typed.join(", ")}`);
  check(
    requests.includes("POST /api/v1/login/webauthn"),
    `the step-up did not sign in with the key; requests: ${requests.join(", ")}`,
  );
  const callback = page.url();
  const back = new URL(callback);
  check(
    `${back.origin}${back.pathname}` === OIDC.redirectUri,
    `the callback is ${callback}, expected the registered ${OIDC.redirectUri}`,
  );
  const error = back.searchParams.get("error");
  check(error === null, `the application got an error: ${error}: ${back.searchParams.get("error_description")}`);
  check(back.searchParams.get("code"), `the callback has no code: ${callback}`);
  check(back.searchParams.get("state") === OIDC.state, `the callback's state differs from the request's: ${callback}`);

  // The new session is the key's, at aal3.
  await page.goto(`${BASE}/account`);
  await heading(page, "Your account");
  const stepped = await lead(page);
  check(/Signed in at aal3 with .*\bhwk\b/.test(stepped), `after the step-up: "${stepped}", expected aal3 with hwk`);
  // Still signed in, with the key at hand: the replacement scenario goes on from here.
  keyHolder = { context, page, secret, cdp, authenticatorId };
  return `${aal2}\n    after the application asked for aal3: ${stepped}`;
}

// --- scenario 5: the same user loses the authenticator app and replaces it, confirming
// with the security key (issue 8, L3 self-service with a WebAuthn step-up)

// Set by the step-up scenario when it ends signed in with the key still plugged in.
let keyHolder = null;

async function replaceScenario(browser) {
  check(keyHolder !== null, "skipped: the step-up scenario did not end signed in");
  const { context, page, secret: lostSecret, cdp, authenticatorId } = keyHolder;

  say("user: the authenticator app is lost; replace it, confirming with the security key");
  await page.goto(`${BASE}/account`);
  await heading(page, "Your account");
  const before = await factorRows(page);
  const appRow = page
    .locator("#factors tbody tr")
    .filter({ has: page.locator("td:first-child", { hasText: /^Authenticator app$/ }) });
  check((await appRow.count()) === 1, `the account page lists ${await appRow.count()} authenticator apps, expected 1`);
  await appRow.getByText("Lost it? Replace").click();
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  check(credentials.length === 1, `the authenticator holds ${credentials.length} credentials, expected 1`);
  const keyId = Buffer.from(credentials[0].credentialId, "base64").toString("base64url");
  const signsBefore = credentials[0].signCount;
  // The challenge the page gets: only the person's other keys may answer it. The page goes on
  // to /enroll/steps as soon as the key has answered, which discards response bodies, so the
  // body is read on its way to the page rather than afterwards.
  let challengeSeen;
  let giveUp;
  const challengeRead = new Promise((resolve, reject) => {
    challengeSeen = resolve;
    giveUp = setTimeout(() => reject(new Error("the page never asked for a step-up challenge")), TIMEOUT_MS);
  }).finally(() => clearTimeout(giveUp));
  await page.route(/\/replace\/challenge$/, async (route) => {
    const response = await route.fetch();
    challengeSeen(await response.json());
    await route.fulfill({ response });
  });
  await appRow.getByRole("button", { name: "Confirm with another security key and replace" }).click();
  const challenge = await challengeRead;
  await page.unroute(/\/replace\/challenge$/);
  const allowed = (challenge.publicKey?.allowCredentials || []).map((c) => c.id);
  check(
    allowed.length === 1 && allowed[0] === keyId,
    `the challenge allows ${JSON.stringify(allowed)}, expected only the security key ${keyId}`,
  );
  const refusal = page.locator("#webauthn-error:not(.hidden)");
  const refused = await Promise.race([
    page.waitForURL((u) => u.pathname === "/enroll/steps", { timeout: TIMEOUT_MS }).then(() => null),
    refusal.waitFor({ timeout: TIMEOUT_MS }).then(async () => (await refusal.innerText()).trim()),
  ]);
  check(refused === null, `the security key was refused for the replacement: "${refused}"`);
  const { credentials: used } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  check(used[0].signCount > signsBefore, "the replacement went ahead without the security key signing");

  say("user: add the replacement authenticator app");
  await heading(page, "Add a factor");
  await noErrorShown(page);
  await page.getByRole("button", { name: "Use an authenticator app instead" }).click();
  await page.locator(".qr svg").waitFor();
  const secret = base32Decode(await page.locator("code.secret").innerText());
  check(!secret.equals(lostSecret), "the replacement app was given the lost app's secret");
  const enrolledStep = currentStep();
  await page.getByLabel("Authentication code", { exact: true }).fill(totp(secret, enrolledStep));
  await page.getByRole("button", { name: "Confirm app" }).click();
  await at(page, "/enroll/steps");
  await noErrorShown(page);
  await sees(page, "Added:");
  await page.getByRole("button", { name: "Save and return to your account" }).click();
  await at(page, "/account");
  await noErrorShown(page);
  await sees(page, "The new factor is saved");
  const after = await factorRows(page);
  check(
    after.length === before.length && after.filter((r) => /^Authenticator app/.test(r)).length === 1,
    `after the replacement the account page should list one app, as before; before: ${JSON.stringify(before)}, after: ${JSON.stringify(after)}`,
  );

  // On another workstation, so that the session the key made stays for the auditor's checks.
  say("user: elsewhere, the lost app no longer signs in; the new one does");
  await context.close();
  const { context: elsewhere, page: other } = await openPage(browser);
  await other.goto(`${BASE}/`);
  await signInWithCode(other, secret, enrolledStep, lostSecret);
  const lead2 = await lead(other);
  check(/Signed in at aal2 with .*\bpwd\b.*\botp\b/.test(lead2), `with the new app: "${lead2}", expected aal2 with pwd, otp`);
  await elsewhere.close();
  return "replaced the app after the key's step-up; the lost app's code is refused, the new app's accepted";
}

// --- scenario 6: the same user loses the phone and the key; the help desk's recovery link
// enrolls a new security key, and the lost factors stop counting (issue 8, L3)

async function helpDeskScenario(browser) {
  say("help desk: open and approve a recovery for the user");
  const helpdesk = `${new URL(OIDC.redirectUri).origin}/helpdesk/recover/${USER}`;
  const resp = await fetch(helpdesk);
  check(resp.ok, `the help desk endpoint answered ${resp.status}`);
  const link = (await resp.text()).trim();
  check(/\/recover\?token=/.test(link), `not a recovery link: ${link}`);

  say("user: open the recovery link and register a new security key");
  const { context, page } = await openPage(browser);
  const { cdp, authenticatorId } = await securityKey(context, page);
  await page.goto(link);
  await at(page, "/enroll/steps");
  await heading(page, "Replace a lost factor");
  await noErrorShown(page);
  await sees(page, "It does not sign you in and works once.");
  await page.locator("#key-register").click();
  try {
    await page.getByText("Added:").waitFor({ timeout: TIMEOUT_MS });
  } catch (e) {
    await noErrorShown(page);
    throw e;
  }
  await page.getByRole("button", { name: "Save the new factor" }).click();
  await heading(page, "Your new factor is saved");
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  check(credentials.length === 1, `the new key holds ${credentials.length} credentials, expected 1`);

  say("user: the link works once");
  await page.goto(link);
  await sees(page, "This recovery link cannot be used");

  say("user: sign in with the passphrase and the new key");
  await page.goto(`${BASE}/`);
  await heading(page, "Sign in");
  await page.getByLabel("Username", { exact: true }).fill(USER);
  await page.getByLabel("Passphrase", { exact: true }).fill(PASSPHRASE);
  await page.getByRole("button", { name: "Continue" }).click();
  await at(page, "/login/verify");
  // The lost app is gone: the page no longer asks for its code.
  const codeFields = await page.getByLabel("Authentication code", { exact: true }).count();
  check(codeFields === 0, "the sign-in still asks for a code of the retired authenticator app");
  await page.locator("#key-verify").click();
  const outcome = await passkeyOutcome(page);
  check(outcome === null, `the new key was refused: "${outcome}"`);
  const signedIn = await lead(page);
  check(/Signed in at aal3 with .*\bhwk\b/.test(signedIn), `with the new key: "${signedIn}", expected aal3 with hwk`);
  const rows = await factorRows(page);
  const second = rows.filter((r) => /^(Security key|Passkey|Authenticator app)/.test(r));
  check(
    second.length === 1 && /^Security key/.test(second[0]),
    `after the recovery the account should hold only the new key as a second factor: ${JSON.stringify(rows)}`,
  );
  await context.close();
  return signedIn;
}

// --- main

async function describe(page, screenshot) {
  if (!page || page.isClosed()) return "(no page open)";
  let body = "";
  try {
    body = await page.locator("body").innerText({ timeout: 2000 });
  } catch (e) {
    body = `(body unreadable: ${e.message})`;
  }
  if (process.env.WARDGATE_SCREENSHOTS) {
    try {
      mkdirSync(process.env.WARDGATE_SCREENSHOTS, { recursive: true });
      const file = join(process.env.WARDGATE_SCREENSHOTS, screenshot);
      await page.screenshot({ path: file, fullPage: true });
      body += `\n(screenshot: ${file})`;
    } catch {}
  }
  return `page: ${page.url()}\n--- page text ---\n${body}\n-----------------`;
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  // No GPU, no sandbox (CI runs as root), and no calls home: the CI machine has no
  // outside network and Chromium would otherwise retry its update and sync services.
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
// Only an unexpected disconnection is news; closing at the end is not.
const disconnected = () => logs.push("browser disconnected");
browser.on("disconnected", disconnected);
// The scenarios use separate accounts (and servers), so one failing does not stop the
// others: a run reports every scenario that failed, each with its own page.
const results = [];
let failures = 0;
async function scenario(who, run) {
  try {
    results.push(`  ${who}: ${await run()}`);
  } catch (e) {
    failures += 1;
    results.push(`  ${who}: FAILED`);
    console.error(`flows: FAILED at "${step}": ${e instanceof Mismatch ? e.message : e.stack || e}`);
    console.error(await describe(pages[pages.length - 1], `failure-${failures}.png`));
    // The next scenario opens its own page; this one is done with.
    await pages[pages.length - 1]?.context().close().catch(() => {});
  }
}
try {
  await scenario(ADMIN, () => passkeyScenario(browser, DEFAULT_SERVER));
  await scenario(USER, () => totpScenario(browser));
  if (OIDC) await scenario(`${USER} (step-up)`, () => stepUpScenario());
  if (OIDC) await scenario(`${USER} (replaces a lost app)`, () => replaceScenario(browser));
  if (OIDC) await scenario(`${USER} (help-desk recovery)`, () => helpDeskScenario(browser));
  if (REFUSING_SERVER) await scenario(`${ADMIN} (refusing copies)`, () => passkeyScenario(browser, REFUSING_SERVER));
} finally {
  browser.off("disconnected", disconnected);
  await browser.close().catch(() => {});
}
if (failures) {
  console.error(`flows: ${failures} scenario(s) failed\n${results.join("\n")}`);
  if (logs.length) console.error(`browser log:\n  ${logs.join("\n  ")}`);
} else {
  console.log(`flows: ok\n${results.join("\n")}`);
  // Refusals the script provoked on purpose show here too; anything else is worth a look.
  const notable = logs.filter((l) => /^(HTTP|page error)/.test(l));
  if (notable.length) console.log(`flows: browser saw\n  ${notable.join("\n  ")}`);
}
process.exit(failures ? 1 : 0);
