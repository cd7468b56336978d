// Small building blocks shared by the pages: labelled fields with their
// error, state badges, progress, notices and a modal dialog.
import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

export function StateBadge({ state }: { state: string }) {
  return <span class={`badge state-${state}`} data-state={state}>{state}</span>;
}

/** Progress is the provisioning bar; failed machines show their reason. */
export function Progress({ value, label }: { value: number; label?: string }) {
  const v = Math.max(0, Math.min(100, Math.round(value || 0)));
  return (
    <span class="progress">
      <progress max={100} value={v} aria-label={label ?? 'provisioning progress'}>{v}%</progress>
      <span class="progress-value">{v}%</span>
    </span>
  );
}

export function Notice({ kind = 'error', children }: { kind?: 'error' | 'info' | 'success'; children: ComponentChildren }) {
  if (!children || (Array.isArray(children) && children.length === 0)) return null;
  return (
    <div class={`notice notice-${kind}`} role={kind === 'error' ? 'alert' : 'status'}>
      {children}
    </div>
  );
}

let seq = 0;
/** useId gives a stable unique id for label/aria wiring. */
export function useId(prefix: string): string {
  const r = useRef('');
  if (!r.current) r.current = `${prefix}-${++seq}`;
  return r.current;
}

interface FieldProps {
  label: string;
  error?: string;
  hint?: ComponentChildren;
  children: (p: { id: string; 'aria-invalid': boolean; 'aria-describedby'?: string }) => JSX.Element;
  name?: string;
}

/**
 * Field renders a label, the control (given its id and aria wiring), a hint
 * and the field's error, which screen readers read with the control.
 */
export function Field({ label, error, hint, children, name }: FieldProps) {
  const id = useId('f');
  const described = [hint ? `${id}-hint` : '', error ? `${id}-err` : ''].filter(Boolean).join(' ');
  return (
    <div class={`field${error ? ' has-error' : ''}`} data-field={name}>
      <label for={id}>{label}</label>
      {children({ id, 'aria-invalid': !!error, ...(described ? { 'aria-describedby': described } : {}) })}
      {hint && <div class="hint" id={`${id}-hint`}>{hint}</div>}
      {error && (
        <div class="field-error" id={`${id}-err`} data-error-for={name}>
          {error}
        </div>
      )}
    </div>
  );
}

/** Dialog is a modal <dialog>: Escape and the close button cancel it. */
export function Dialog({ title, open, onClose, children }: { title: string; open: boolean; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      if (typeof d.showModal === 'function') d.showModal();
      else d.setAttribute('open', '');
    } else if (!open && d.open) {
      if (typeof d.close === 'function') d.close();
      else d.removeAttribute('open');
    }
  }, [open]);
  return (
    <dialog ref={ref} class="dialog" aria-label={title} onClose={onClose} onCancel={onClose}>
      {open && (
        <div class="dialog-body">
          <header class="dialog-head">
            <h2>{title}</h2>
            <button type="button" class="icon" aria-label="Close" onClick={onClose}>×</button>
          </header>
          {children}
        </div>
      )}
    </dialog>
  );
}

/** KV renders a definition list of label/value pairs, skipping empty values. */
export function KV({ items }: { items: [string, ComponentChildren][] }) {
  const shown = items.filter(([, v]) => v !== undefined && v !== null && v !== '');
  if (!shown.length) return <p class="muted">Nothing reported.</p>;
  return (
    <dl class="kv">
      {shown.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}
