// Drives the playground page in Debian's Chromium the way a person does, by visible labels
// and roles: paste schema/models.zed and its relationships, check that a guest may execute
// a public model and may not edit it (with the explanation), expand, run
// schema/models.yaml as a validation file, download it, check an IP allow-list caveat
// (schema/scoped_keys.zed) as conditional, then inside and outside the allowed network by
// the Context, and see a schema error at its line:column. Any request to a host other than
// the server fails the run.
//
// Run by tests/playground_browser.rs. Environment: ARBITER_URL (required, the server),
// CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (default target/playground-screenshots).
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const base = process.env.ARBITER_URL;
if (!base) {
  console.error('ARBITER_URL is not set');
  process.exit(2);
}
const shots = process.env.SCREENSHOT_DIR || path.join(root, 'target/playground-screenshots');
mkdirSync(shots, { recursive: true });
const serverHost = new URL(base).host;
const TIMEOUT = 30_000;

const schema = readFileSync(path.join(root, 'schema/models.zed'), 'utf8');
const validation = readFileSync(path.join(root, 'schema/models.yaml'), 'utf8');

/** The lines of the `relationships: |` block of a validation file. */
function relationshipsOf(yaml) {
  const lines = yaml.split('\n');
  const start = lines.findIndex((line) => line.startsWith('relationships:'));
  const out = [];
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith('  ')) break;
    out.push(line.trim());
  }
  return out.join('\n');
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--headless',
    '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-sync',
  ],
});
const context = await browser.newContext({ viewport: { width: 1400, height: 1050 }, acceptDownloads: true });
const page = await context.newPage();
page.setDefaultTimeout(TIMEOUT);

const offHost = [];
page.on('request', (request) => {
  const url = new URL(request.url());
  if (url.protocol === 'data:' || url.protocol === 'blob:') return;
  if (url.host !== serverHost) offHost.push(request.url());
});
const pageErrors = [];
page.on('pageerror', (error) => pageErrors.push(error.message));

let passed = 0;
let failed = 0;

async function step(name, body) {
  try {
    await body();
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (error) {
    failed += 1;
    console.log(`not ok - ${name}: ${error.message.split('\n')[0]}`);
    await page.screenshot({ path: path.join(shots, `failed-${passed + failed}.png`), fullPage: true }).catch(() => {});
  }
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const result = page.getByRole('region', { name: 'Result', exact: true });
const field = (label) => page.getByLabel(label, { exact: true });
const button = (name) => page.getByRole('button', { name, exact: true });

async function ask(permission) {
  await field('Resource').fill('model:public_llm');
  await field('Permission').fill(permission);
  await field('Subject').fill('user:stranger');
  await button('Check').click();
}

await step('the page loads with every control labelled', async () => {
  await page.goto(`${base}/playground`);
  for (const label of ['Schema', 'Relationships', 'Context', 'Validation file', 'Resource', 'Permission', 'Subject']) {
    await field(label).waitFor();
  }
  for (const name of ['Check', 'Expand', 'Run validation']) {
    await button(name).waitFor();
  }
  await result.waitFor();
});

await step('the schema compiles as it is pasted', async () => {
  await field('Schema').fill(schema);
  await field('Relationships').fill(relationshipsOf(validation));
  await page.getByText('Schema compiles.', { exact: true }).waitFor();
});

await step('a guest may execute a public model', async () => {
  await ask('execute');
  await result.getByText('has permission', { exact: true }).waitFor();
  const text = await result.innerText();
  check(text.includes('model:public_llm#guest@user:*'), `no witness relationship in: ${text}`);
  check(text.includes('names every subject of its type'), `no wildcard reason in: ${text}`);
  await page.screenshot({ path: path.join(shots, 'check-execute.png'), fullPage: true });
});

await step('a guest may not edit it, and the explanation says why', async () => {
  await ask('edit');
  await result.getByText('no permission', { exact: true }).waitFor();
  const text = await result.innerText();
  check(text.includes('contributor | project.contributor'), `no expression in: ${text}`);
  check(text.includes('model:public_llm#contributor'), `no contributor branch in: ${text}`);
  check(text.includes('no relationship grants it'), `no reason in: ${text}`);
  check(text.includes('the relation names no object'), `no arrow reason in: ${text}`);
  check(!text.includes('null') && !text.includes('undefined'), `a missing value shows in: ${text}`);
  await page.screenshot({ path: path.join(shots, 'check-edit.png'), fullPage: true });
});

await step('expand draws the tree', async () => {
  await field('Permission').fill('execute');
  await button('Expand').click();
  await result.getByText('expand model:public_llm#execute', { exact: true }).waitFor();
  const tree = result.getByRole('list', { name: 'Expand tree' });
  await tree.waitFor();
  const text = await tree.innerText();
  check(text.includes('model:public_llm#guest (leaf)'), `no guest leaf in: ${text}`);
  check(text.includes('user:*'), `no wildcard subject in: ${text}`);
  check((await tree.locator('ul').count()) > 0, 'the tree is not nested');
  await page.screenshot({ path: path.join(shots, 'expand.png'), fullPage: true });
});

await step('schema/models.yaml runs as a validation file and passes', async () => {
  await field('Validation file').fill(validation);
  await button('Run validation').click();
  await result.getByText('all 20 passed', { exact: true }).waitFor();
  const assertions = result.getByRole('list', { name: 'Assertions' });
  const text = await assertions.innerText();
  check(!text.includes('fail'), `a failure in: ${text}`);
  check(text.includes('model:public_llm#edit@user:stranger'), `an assertion is missing in: ${text}`);
  await page.screenshot({ path: path.join(shots, 'validation.png'), fullPage: true });
});

await step('the validation file downloads as it is', async () => {
  const [download] = await Promise.all([page.waitForEvent('download'), button('Download validation file').click()]);
  check(download.suggestedFilename() === 'validation.yaml', `named ${download.suggestedFilename()}`);
  const saved = path.join(shots, 'validation.yaml');
  await download.saveAs(saved);
  check(readFileSync(saved, 'utf8') === validation, 'the download differs from the text area');
});

await step('an IP allow-list caveat answers conditional, then by the Context', async () => {
  const scoped = readFileSync(path.join(root, 'schema/scoped_keys.yaml'), 'utf8');
  await field('Schema').fill(readFileSync(path.join(root, 'schema/scoped_keys.zed'), 'utf8'));
  await field('Relationships').fill(relationshipsOf(scoped));
  await page.getByText('Schema compiles.', { exact: true }).waitFor();
  await field('Resource').fill('project:p3');
  await field('Permission').fill('write');
  await field('Subject').fill('api_key:k4');
  await field('Context').fill('');
  await button('Check').click();
  await result.getByText('conditional permission', { exact: true }).waitFor();
  let text = await result.innerText();
  check(text.includes('user_ip'), `the missing parameter is not named in: ${text}`);
  check(text.includes('its caveat needs context the request lacks'), `no caveat reason in: ${text}`);
  check(text.includes('ip_allowlist'), `the caveat is not shown in: ${text}`);
  await page.screenshot({ path: path.join(shots, 'check-conditional.png'), fullPage: true });
  await field('Context').fill('{"user_ip": "10.1.2.3"}');
  await button('Check').click();
  await result.getByText('has permission', { exact: true }).waitFor();
  await field('Context').fill('{"user_ip": "8.8.8.8"}');
  await button('Check').click();
  await result.getByText('no permission', { exact: true }).waitFor();
  text = await result.innerText();
  check(text.includes('its caveat is false'), `no false-caveat reason in: ${text}`);
  await field('Context').fill('');
});

await step('a schema error shows its line and column', async () => {
  await field('Schema').fill('definition user {}\ndefinition doc {\n    relation viewer: usr\n}\n');
  const status = page.getByRole('status', { name: 'Schema problems' });
  await status.getByText('3:22: unknown type `usr`').waitFor();
  await page.screenshot({ path: path.join(shots, 'schema-error.png'), fullPage: true });
});

await step('a check against the broken schema reports it, with no answer', async () => {
  await field('Permission').fill('edit');
  await button('Check').click();
  await result.getByText(/^error: /).waitFor();
  const text = await result.innerText();
  check(!text.includes('has permission'), `an error answered has permission: ${text}`);
  check(text.includes('3:22'), `no line:column in: ${text}`);
});

await step('Load example fills in the models example, ready to check', async () => {
  await button('Load example').click();
  await page.getByText('Schema compiles.', { exact: true }).waitFor();
  check((await field('Schema').inputValue()) === schema, 'the example schema is not schema/models.zed');
  await button('Check').click();
  await result.getByText('no permission', { exact: true }).waitFor();
});

await step('the page asked nothing of any other host', async () => {
  check(offHost.length === 0, `requests off the server: ${offHost.join(', ')}`);
  check(pageErrors.length === 0, `script errors: ${pageErrors.join('; ')}`);
});

await browser.close();
console.log(`screenshots in ${shots}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
