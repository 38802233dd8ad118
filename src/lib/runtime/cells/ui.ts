// Small page-load helpers for the cells' controls (no tfjs).

/** Keeps each range input's <output> (named by aria-describedby) showing its value. */
export function mirrorRange(selector: string) {
  for (const root of document.querySelectorAll<HTMLElement>(selector)) {
    const ranges = root.querySelectorAll<HTMLInputElement>('input[type="range"][aria-describedby]');
    for (const range of ranges) {
      const out = root.querySelector(`#${range.getAttribute('aria-describedby')}`);
      range.addEventListener('input', () => out && (out.textContent = range.value));
    }
  }
}

/** Lets a file be dropped on a cell: it becomes the cell's file input's file. */
export function acceptDrops(selector: string) {
  for (const root of document.querySelectorAll<HTMLElement>(selector)) {
    const input = root.querySelector<HTMLInputElement>('input[type="file"]');
    if (!input) continue;
    root.addEventListener('dragover', (event) => {
      event.preventDefault();
      root.querySelector('[data-drop]')?.classList.add('over');
    });
    root.addEventListener('dragleave',
      () => root.querySelector('[data-drop]')?.classList.remove('over'));
    root.addEventListener('drop', (event) => {
      event.preventDefault();
      root.querySelector('[data-drop]')?.classList.remove('over');
      if (event.dataTransfer?.files.length) input.files = event.dataTransfer.files;
    });
  }
}
