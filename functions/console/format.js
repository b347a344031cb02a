// Display helpers that need no browser, run by Node in tests (tests/console/test_console_rules.py).
// A malformed value from the API shows as UNREADABLE in its own cell; it never throws, so one bad
// partner cannot empty the list.

export const UNREADABLE = 'unreadable date';

// `2026-11-25T12:00:00Z` → `2026-11-25 12:00 UTC`; '—' for none.
export function formatDate(text) {
  if (!text) return '—';
  const moment = new Date(text);
  if (Number.isNaN(moment.getTime())) return UNREADABLE;
  return moment.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
}

// Whole days from `now` until `text` (rounded up), or null when `text` is no date.
export function daysUntil(text, now = Date.now()) {
  const moment = new Date(text).getTime();
  if (!text || Number.isNaN(moment)) return null;
  return Math.ceil((moment - now) / 86_400_000);
}

// `render` of each item; an item it throws on becomes `fallback(item, error)` instead.
export function renderEach(items, render, fallback) {
  return items.map((item) => {
    try {
      return render(item);
    } catch (error) {
      return fallback(item, error);
    }
  });
}
