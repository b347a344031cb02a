// Form checks that mirror the credential-vending API's rules (docs/dropzone-api.md), so a user
// sees a mistake before sending it. The API checks again and its message wins when they differ.
// Each function returns null when the value is fine, else a message for the field.

export const NAME_RULE = '2-63 lowercase letters, digits or hyphens, starting with a letter or digit';
// `$` in a JavaScript regex without the `m` flag matches only at the very end (unlike Python's).
const NAME_PATTERN = /^[a-z0-9][a-z0-9-]{1,62}$/;
// The API's RESERVED_NAMES (functions/dropzone_partners/partners.py); a test compares the two.
export const RESERVED_NAMES = ['internal', 'staff'];
// Where staff uploads go (the API's STAFF_PREFIX; compared by the same test).
export const STAFF_PREFIX = 'dropzone/_staff/';
// IAM tag values: Unicode letters and digits, spaces (Zs only: no line or paragraph separators)
// and _.:/=+-@, as the API checks them.
const TAG_VALUE_PATTERN = /^[\p{L}\p{N}\p{Zs}_.:/=+\-@]{1,256}$/u;
export const MIN_DAYS = 1;
export const MAX_DAYS = 365;
export const MAX_CIDRS = 10;
export const MAX_GRACE_HOURS = 168;
export const SESSION_SECONDS = [900, 1800, 3600];
const MAX_KEY_BYTES = 1024 - new TextEncoder().encode(STAFF_PREFIX).length;

export function nameProblem(value) {
  if (!NAME_PATTERN.test(value)) {
    return `use ${NAME_RULE}, for example: acme-logistics`;
  }
  if (RESERVED_NAMES.includes(value)) {
    return `${value} is reserved (${RESERVED_NAMES.join(', ')} are); choose another name, for example: acme-logistics`;
  }
  return null;
}

export function contactProblem(value) {
  if (!TAG_VALUE_PATTERN.test(value)) {
    return 'use 1-256 letters, digits, spaces or _.:/=+-@ characters, for example: ops@acme.example';
  }
  return null;
}

export function daysProblem(text) {
  const value = Number(text);
  if (String(text).trim() === '' || !Number.isInteger(value) || value < MIN_DAYS || value > MAX_DAYS) {
    return `use a whole number of days from ${MIN_DAYS} to ${MAX_DAYS}`;
  }
  return null;
}

export function splitCidrs(text) {
  return String(text).split(/[\s,]+/).filter(Boolean);
}

function ipv4Problem(address, bits) {
  const parts = address.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) {
    return 'is not an IPv4 address';
  }
  if (bits > 32) {
    return 'has a prefix longer than 32';
  }
  const value = parts.reduce((acc, p) => acc * 256 + Number(p), 0);
  const hostSize = 2 ** (32 - bits);
  if (value % hostSize !== 0) {
    return `has host bits set; use the network address, e.g. ${networkAddress(value, hostSize)}/${bits}`;
  }
  return null;
}

function networkAddress(value, hostSize) {
  let network = value - (value % hostSize);
  const octets = [];
  for (let i = 0; i < 4; i += 1) {
    octets.unshift(network % 256);
    network = Math.floor(network / 256);
  }
  return octets.join('.');
}

export function cidrsProblem(values) {
  if (values.length > MAX_CIDRS) {
    return `got ${values.length} CIDRs; at most ${MAX_CIDRS} are allowed`;
  }
  if (values.join(' ').length > 256) {
    return 'the CIDRs take more than 256 characters together; use fewer, wider blocks';
  }
  for (const value of values) {
    // A bare address counts as a single-address block (/32 or /128), as the API reads it; no
    // netmasks and no IPv6 scope ids (`fe80::%eth0/64`).
    const match = /^([0-9A-Fa-f.:]+)(?:\/(\d{1,3}))?$/.exec(value);
    let problem = match ? null : 'is not a CIDR block';
    if (match && match[1].includes(':')) {
      // IPv6: a light check here; the API applies the full rules.
      if (!/^[0-9a-fA-F:]+$/.test(match[1]) || Number(match[2] ?? 128) > 128) problem = 'is not an IPv6 CIDR block';
    } else if (match) {
      problem = ipv4Problem(match[1], Number(match[2] ?? 32));
    }
    if (problem) {
      return problem.includes('e.g.') ? `${value} ${problem}` : `${value} ${problem}; for example: 203.0.113.0/24`;
    }
  }
  return null;
}

export function graceProblem(text) {
  const value = Number(text);
  if (String(text).trim() === '' || !Number.isInteger(value) || value < 0 || value > MAX_GRACE_HOURS) {
    return `use a whole number of hours from 0 to ${MAX_GRACE_HOURS}`;
  }
  return null;
}

// The object key of an upload: the optional folder, then the file name (under STAFF_PREFIX).
export function uploadKey(folder, fileName) {
  const cleanFolder = String(folder).trim().replace(/^\/+|\/+$/g, '');
  return cleanFolder ? `${cleanFolder}/${fileName}` : fileName;
}

export function folderProblem(folder) {
  const clean = String(folder).trim().replace(/^\/+|\/+$/g, '');
  if (!clean) return null;
  if (clean.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    return "use folder names separated by single '/', without '.' or '..', for example: 2026/11";
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(clean) || clean.length > 400) {
    return 'use at most 400 printable characters';
  }
  if (clean.includes('$')) {
    return "use no '$' in folder names";
  }
  return null;
}

// The API's upload_key_problem: S3 keys are at most 1,024 bytes of UTF-8, the prefix included.
export function keyProblem(key) {
  const bytes = utf8Length(key);
  if (bytes < 1 || bytes > MAX_KEY_BYTES) {
    return `the object key must be 1-${MAX_KEY_BYTES} bytes (UTF-8); shorten the folder or file name`;
  }
  if (key.includes('$')) {
    return "the object key may not contain '$'; rename the file";
  }
  // eslint-disable-next-line no-control-regex
  if (key.split('/').some((part) => part === '' || part === '.' || part === '..') || /[\u0000-\u001f\u007f-\u009f]/.test(key)) {
    return "the object key may not have empty, '.' or '..' parts or control characters; rename the file";
  }
  return null;
}

// -1 for a string with a lone surrogate, which no S3 key can hold.
function utf8Length(text) {
  if (!String(text).isWellFormed()) return -1;
  return new TextEncoder().encode(text).length;
}
