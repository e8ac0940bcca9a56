// The playground page: sends what is on the page to this server's sandbox
// (POST /v1/playground/evaluate) and draws the answers. No other host is ever contacted,
// and all text from the server is inserted as text, never as HTML.
'use strict';

const $ = (id) => document.getElementById(id);

/** Builds an element with attributes and children (strings become text nodes). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

/** Posts one evaluation; rejects with the server's error message (and its details). */
async function evaluate(body) {
  const headers = { 'content-type': 'application/json' };
  const token = $('token').value.trim();
  if (token) headers.authorization = 'Bearer ' + token;
  const response = await fetch('/v1/playground/evaluate', {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
  });
  let json = null;
  try {
    json = await response.json();
  } catch (_) {
    json = null;
  }
  if (!response.ok) {
    const detail = json && json.error ? json.error : null;
    const error = new Error(detail ? detail.message : 'the server answered ' + response.status);
    error.detail = detail;
    throw error;
  }
  return json;
}

function problemList(problems) {
  return el('ul', { class: 'problems' },
    ...problems.map((p) => el('li', {}, `${p.line}:${p.column}: ${p.message}`)));
}

// ---- Schema problems, as you type ----

let schemaTimer = null;
let schemaSeq = 0;

async function checkSchema() {
  const seq = ++schemaSeq;
  const status = $('schema-status');
  const schema = $('schema').value;
  if (!schema.trim()) {
    status.replaceChildren();
    status.className = 'status';
    return;
  }
  try {
    const answer = await evaluate({ action: 'schema', schema });
    if (seq !== schemaSeq) return;
    const problems = answer.problems || [];
    if (problems.length === 0) {
      status.className = 'status ok';
      status.replaceChildren('Schema compiles.');
    } else {
      status.className = 'status bad';
      status.replaceChildren(
        el('span', {}, problems.length === 1 ? '1 problem:' : `${problems.length} problems:`),
        problemList(problems));
    }
  } catch (error) {
    if (seq !== schemaSeq) return;
    status.className = 'status bad';
    status.replaceChildren('Schema not checked: ' + error.message);
  }
}

$('schema').addEventListener('input', () => {
  clearTimeout(schemaTimer);
  schemaTimer = setTimeout(checkSchema, 300);
});

// ---- Result region ----

function show(...nodes) {
  $('result-body').replaceChildren(...nodes.filter((node) => node !== null && node !== undefined));
}

function showError(error) {
  const nodes = [el('p', { class: 'error' }, 'error: ' + error.message)];
  if (error.detail && error.detail.problems && error.detail.problems.length) {
    nodes.push(problemList(error.detail.problems));
  }
  show(...nodes);
}

function question() {
  return {
    schema: $('schema').value,
    relationships: $('relationships').value,
    resource: $('resource').value.trim(),
    permission: $('permission').value.trim(),
    subject: $('subject').value.trim(),
  };
}

/** The Context text area as an object, or undefined when empty. Throws on bad JSON. */
function context() {
  const text = $('context').value.trim();
  if (!text) return undefined;
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error('Context is not JSON: ' + error.message);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error('Context must be a JSON object');
  }
  return value;
}

const ANSWER_WORDS = {
  has_permission: 'has permission',
  no_permission: 'no permission',
  conditional_permission: 'conditional permission',
};

const REASONS = {
  direct: 'names the subject',
  wildcard: 'names every subject of its type',
  is_subject: 'is the subject itself',
  no_relationship: 'no relationship grants it',
  no_related_objects: 'the relation names no object',
  nil: 'nil grants nothing',
  excluded: 'excluded by the subtracted side',
  cycle: 'cycle: already being evaluated, no access',
  cycle_through_exclusion: 'cycle through an exclusion: undefined, denied',
  see_above: 'evaluated above',
  is_resource: 'the subject is the resource itself',
  not_resource: 'the subject is not the resource itself',
  caveat_false: 'its caveat is false',
  missing_context: 'its caveat needs context the request lacks',
  expired: 'expired',
  caveat_error: 'its caveat failed to evaluate',
};

function explanationLabel(node) {
  switch (node.kind) {
    case 'permission':
    case 'relation': {
      const name = `${node.resource}#${node.relation}`;
      return node.expression ? `${node.kind} ${name} = ${node.expression}` : `${node.kind} ${name}`;
    }
    case 'relationship':
      return `relationship ${node.relationship}` +
        (node.written_at ? ` (written at revision ${node.written_at})` : '') +
        (node.caveat ? ` (caveat ${node.caveat})` : '') +
        (node.expires_at && node.reason !== 'expired' ? ` (expires ${node.expires_at})` : '');
    case 'nil':
      return 'nil';
    case 'self_ref':
      return 'self';
    default:
      return `${node.kind} ${node.expression || ''}`;
  }
}

function explanationNode(node) {
  const line = el('span', { class: 'line' },
    el('span', { class: 'what' }, explanationLabel(node)), ' ',
    el('span', { class: 'verdict ' + node.result }, node.result));
  if (node.reason) {
    let why = REASONS[node.reason] || node.reason;
    if (node.reason === 'expired' && node.expires_at) why += ` at ${node.expires_at}`;
    line.append(' ', el('span', { class: 'reason' }, '— ' + why));
  }
  if (node.missing_context && node.missing_context.length) {
    line.append(' ', el('span', { class: 'reason' }, `(missing ${node.missing_context.join(', ')})`));
  }
  if (node.error) {
    line.append(' ', el('span', { class: 'reason' }, `(${node.error})`));
  }
  const item = el('li', {}, line);
  if (node.children && node.children.length) {
    item.append(el('ul', {}, ...node.children.map(explanationNode)));
  }
  return item;
}

function expandNode(node) {
  let label = `${node.resource}#${node.relation}`;
  if (node.kind === 'arrow') label += ` (arrow ${node.tupleset}.${node.computed})`;
  else label += ` (${node.kind})`;
  const item = el('li', {}, el('span', { class: 'what' }, label));
  if (node.subjects && node.subjects.length) {
    item.append(el('ul', { class: 'subjects' },
      ...node.subjects.map((s) => el('li', {}, el('code', {}, s)))));
  }
  if (node.children && node.children.length) {
    item.append(el('ul', {}, ...node.children.map(expandNode)));
  }
  return item;
}

async function runCheck() {
  const q = question();
  let ctx;
  try {
    ctx = context();
  } catch (error) {
    showError(error);
    return;
  }
  show(el('p', { class: 'hint' }, 'Checking…'));
  try {
    const answer = await evaluate({ action: 'check', ...q, context: ctx });
    lastCheck = { ...q, allowed: answer.allowed };
    const words = ANSWER_WORDS[answer.permissionship] || answer.permissionship;
    const conditional = answer.permissionship === 'conditional_permission';
    const missing = answer.missing_context || [];
    const sentence = conditional
      ? `${q.subject} may ${q.permission} ${q.resource} only if the caveats allow it: ` +
        `give ${missing.join(', ')} in Context.`
      : `${q.subject} ${answer.allowed ? 'may' : 'may not'} ${q.permission} ${q.resource}.`;
    const explanation = answer.explanation;
    show(
      el('p', { class: 'answer ' + answer.permissionship }, words),
      el('p', {}, sentence),
      el('h3', {}, answer.allowed ? 'Why: what grants it'
        : conditional ? 'Why conditional: every branch tried' : 'Why not: every branch tried'),
      el('ul', { class: 'tree', 'aria-label': 'Explanation' }, explanationNode(explanation.tree)),
      explanation.truncated ? el('p', { class: 'hint' }, `Explanation cut at ${explanation.nodes} nodes.`) : null);
  } catch (error) {
    showError(error);
  }
}

async function runExpand() {
  const q = question();
  show(el('p', { class: 'hint' }, 'Expanding…'));
  try {
    const answer = await evaluate({
      action: 'expand',
      schema: q.schema,
      relationships: q.relationships,
      resource: q.resource,
      permission: q.permission,
    });
    show(
      el('p', { class: 'answer' }, `expand ${q.resource}#${q.permission}`),
      el('ul', { class: 'tree', 'aria-label': 'Expand tree' }, expandNode(answer.tree)));
  } catch (error) {
    showError(error);
  }
}

async function runValidation() {
  show(el('p', { class: 'hint' }, 'Running…'));
  try {
    const answer = await evaluate({
      action: 'validate',
      schema: $('schema').value,
      validation: $('validation').value,
    });
    const v = answer.validation;
    const failed = v.items.filter((it) => !it.passed).length;
    const summary = v.passed
      ? `all ${v.items.length} passed`
      : `${failed} of ${v.items.length} failed` + (v.problems.length ? `, ${v.problems.length} problems` : '');
    const items = v.items.map((it) => el('li', { class: it.passed ? 'pass' : 'fail' },
      el('span', { class: 'verdict ' + (it.passed ? 'granted' : 'denied') }, it.passed ? 'pass' : 'fail'), ' ',
      `${it.kind} `, el('code', {}, it.text), ` (line ${it.line})`,
      it.messages && it.messages.length ? el('ul', {}, ...it.messages.map((m) => el('li', {}, m))) : null));
    const problems = v.problems.map((p) => el('li', { class: 'fail' },
      p.line ? `line ${p.line}: ${p.message}` : p.message));
    show(
      el('p', { class: 'answer ' + (v.passed ? 'has_permission' : 'no_permission') }, summary),
      problems.length ? el('ul', { 'aria-label': 'Problems' }, ...problems) : null,
      el('ul', { class: 'validation', 'aria-label': 'Assertions' }, ...items));
  } catch (error) {
    showError(error);
  }
}

// ---- Download ----

let lastCheck = null;

function block(text) {
  const lines = text.replace(/\s+$/, '').split('\n');
  return lines.map((line) => (line ? '  ' + line : '')).join('\n');
}

/** The Validation file text area, or one made from the schema, relationships and last check. */
function validationFileText() {
  const text = $('validation').value;
  if (text.trim()) return text;
  let out = 'schema: |-\n' + block($('schema').value) + '\n';
  out += 'relationships: |-\n' + block($('relationships').value) + '\n';
  if (lastCheck) {
    const assertion = `${lastCheck.resource}#${lastCheck.permission}@${lastCheck.subject}`;
    out += 'assertions:\n';
    out += (lastCheck.allowed ? '  assertTrue:\n' : '  assertFalse:\n') + `    - "${assertion}"\n`;
  }
  return out;
}

function download() {
  const blob = new Blob([validationFileText()], { type: 'application/yaml' });
  const url = URL.createObjectURL(blob);
  const link = el('a', { href: url, download: 'validation.yaml' });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ---- Example ----

async function loadExample() {
  try {
    const response = await fetch('/playground/example.json');
    if (!response.ok) throw new Error('the server answered ' + response.status);
    const example = await response.json();
    $('schema').value = example.schema;
    $('relationships').value = example.relationships;
    $('validation').value = example.validation;
    $('resource').value = example.resource;
    $('permission').value = example.permission;
    $('subject').value = example.subject;
    checkSchema();
    show(el('p', { class: 'hint' }, 'Example loaded: press Check.'));
  } catch (error) {
    showError(error);
  }
}

$('check').addEventListener('click', runCheck);
$('expand').addEventListener('click', runExpand);
$('validate').addEventListener('click', runValidation);
$('download').addEventListener('click', download);
$('example').addEventListener('click', loadExample);
