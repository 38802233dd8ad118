// The one client script of the equation/code pairs: symbol hover linking and copy buttons.
const scope = (el: Element) => el.closest('[data-sym-scope]') ?? document;

function mark(target: EventTarget | null, on: boolean) {
  const el = target instanceof Element ? target.closest<HTMLElement>('[data-sym]') : null;
  if (!el) return;
  const primary = el.dataset.sym!.split(' ')[0];
  scope(el).querySelectorAll(`[data-sym~="${primary}"]`)
    .forEach((s) => s.classList.toggle('sym-on', on));
}

document.addEventListener('pointerover', (e) => mark(e.target, true));
document.addEventListener('pointerout', (e) => mark(e.target, false));
document.addEventListener('focusin', (e) => mark(e.target, true));
document.addEventListener('focusout', (e) => mark(e.target, false));
document.querySelectorAll<HTMLElement>('.katex [data-sym]').forEach((s) => (s.tabIndex = 0));

document.addEventListener('click', async (e) => {
  const target = e.target instanceof Element ? e.target : null;
  const button = target?.closest<HTMLButtonElement>('[data-copy]');
  const pane = button?.closest('figure')?.querySelector('[data-region]');
  if (!button || !pane) return;
  const text = [...pane.querySelectorAll('.line')].map((l) => l.textContent).join('\n');
  await navigator.clipboard.writeText(text);
  button.textContent = 'Copied';
  setTimeout(() => (button.textContent = 'Copy'), 1500);
});
