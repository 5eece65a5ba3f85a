import type { VNode } from 'preact';
import { renderToString } from 'preact-render-to-string';

/** Render a page component to a full HTML document. Text is escaped by preact. */
export function renderPage(vnode: VNode): string {
  return '<!doctype html>' + renderToString(vnode);
}
