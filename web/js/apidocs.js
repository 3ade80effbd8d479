// The API page: lists every operation of /openapi.json, grouped by service,
// with who may call it, what it takes and what it answers. Our own small
// renderer: the page works offline, from the binary alone.

import { h, fill } from './ui.js';

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/** `#/components/schemas/Order` as `Order`; an inline schema by its type. */
function schemaName(schema) {
  if (!schema) return '';
  if (schema.$ref) return schema.$ref.split('/').pop();
  if (schema.type === 'array' || (Array.isArray(schema.type) && schema.type.includes('array'))) {
    return `${schemaName(schema.items)}[]`;
  }
  if (schema.allOf) return schema.allOf.map(schemaName).join(' & ');
  return Array.isArray(schema.type) ? schema.type.join(' | ') : schema.type || 'any';
}

function schemaLink(schema) {
  const name = schemaName(schema);
  return schema && (schema.$ref || schema.items?.$ref)
    ? h('a', { href: `#schema-${name.replace('[]', '')}` }, h('code', {}, name))
    : h('code', {}, name);
}

function contentOf(content) {
  return Object.entries(content || {}).map(([type, media]) => h('span', { class: 'media' }, schemaLink(media.schema), ' ', h('span', { class: 'muted' }, type)));
}

function roles(op) {
  const reqs = op.security || [];
  const bearer = reqs.find((r) => r.bearer);
  if (!bearer) return h('span', { class: 'badge role-open' }, 'open');
  return bearer.bearer.map((r) => h('span', { class: 'badge role' }, r));
}

function operation(path, method, op) {
  const params = (op.parameters || []).map((p) => h('li', {},
    h('code', {}, p.name), ` (${p.in}${p.required ? ', required' : ''}) `, schemaLink(p.schema), p.description ? ` — ${p.description}` : ''));
  const body = op.requestBody
    ? h('p', {}, h('strong', {}, 'Body: '), contentOf(op.requestBody.content), op.requestBody.required ? '' : ' (optional)')
    : null;
  const answers = Object.entries(op.responses || {}).map(([status, r]) => h('li', { class: `answer s${status[0]}xx` },
    h('code', { class: 'status' }, status), ' ', r.description || '', ' ', contentOf(r.content)));
  return h('details', { class: 'operation', dataset: { search: `${method} ${path} ${op.summary || ''} ${JSON.stringify(op.security || 'open')}`.toLowerCase() } },
    h('summary', {}, h('span', { class: `method m-${method}` }, method.toUpperCase()), ' ', h('code', { class: 'path' }, path), ' ', h('span', { class: 'op-summary' }, op.summary || ''), ' ', roles(op)),
    h('div', { class: 'op-body' },
      op.description ? h('p', {}, op.description) : null,
      params.length ? [h('h4', {}, 'Parameters'), h('ul', { class: 'params' }, params)] : null,
      body,
      h('h4', {}, 'Answers'),
      h('ul', { class: 'answers' }, answers)));
}

function schemas(doc) {
  const all = Object.entries(doc.components?.schemas || {});
  return h('section', { id: 'schemas', class: 'card', 'aria-labelledby': 'schemas-title' },
    h('h2', { id: 'schemas-title' }, 'Schemas'),
    all.map(([name, s]) => h('details', { id: `schema-${name}`, class: 'schema' },
      h('summary', {}, h('code', {}, name), s.description ? h('span', { class: 'muted' }, ` ${s.description}`) : ''),
      s.enum ? h('p', {}, 'One of: ', s.enum.map((v) => h('code', {}, `${v} `))) : null,
      s.properties ? h('ul', { class: 'params' }, Object.entries(s.properties).map(([p, ps]) => h('li', {},
        h('code', {}, p), (s.required || []).includes(p) ? ' (required) ' : ' ', schemaLink(ps), ps.description ? ` — ${ps.description}` : ''))) : null)));
}

function render(doc) {
  const groups = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags || ['other'])[0];
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push(operation(path, method, op));
    }
  }
  const tags = new Map((doc.tags || []).map((t) => [t.name, t.description]));
  const list = [...groups].map(([tag, ops]) => h('section', { class: 'card service', 'aria-labelledby': `tag-${tag}` },
    h('h2', { id: `tag-${tag}` }, tag, tags.get(tag) ? h('span', { class: 'muted' }, ` — ${tags.get(tag)}`) : ''),
    ops));
  fill(document.getElementById('api'), h('p', { class: 'muted' }, `${doc.info.title} ${doc.info.version} · OpenAPI ${doc.openapi}`), list, schemas(doc));
  const filter = document.getElementById('filter');
  const count = document.getElementById('api-count');
  const apply = () => {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const el of document.querySelectorAll('.operation')) {
      const match = words.every((w) => el.dataset.search.includes(w));
      el.hidden = !match;
      if (match) shown += 1;
    }
    for (const section of document.querySelectorAll('.service')) {
      section.hidden = !section.querySelector('.operation:not([hidden])');
    }
    count.textContent = `${shown} operations`;
  };
  filter.addEventListener('input', apply);
  apply();
}

async function load() {
  try {
    const res = await fetch('/openapi.json', { headers: { Accept: 'application/json' } });
    if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
    render(await res.json());
  } catch (e) {
    fill(document.getElementById('api'), h('p', { class: 'error', role: 'alert' }, `The description could not be loaded: ${e.message}`));
  }
}

load();
