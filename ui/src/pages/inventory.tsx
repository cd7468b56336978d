// The inventory in readable form: every section the agent reports.
import type { Inventory as Inv } from '../lib/inventory';
import { diskID } from '../lib/inventory';
import { KV } from '../components/common';
import { bytes, speed } from '../lib/format';

export function Inventory({ inv }: { inv: Inv }) {
  const cpu = inv.cpu ?? {};
  const mem = inv.memory ?? {};
  return (
    <div class="inventory">
      {inv.warnings && inv.warnings.length > 0 && (
        <div class="notice notice-info" role="status">
          The agent could not read everything: {inv.warnings.join('; ')}
        </div>
      )}
      <div class="grid">
        <article class="card">
          <h3>System</h3>
          <KV
            items={[
              ['Vendor', inv.system?.vendor],
              ['Model', inv.system?.product],
              ['Version', inv.system?.version],
              ['Serial', inv.system?.serial],
              ['UUID', inv.system?.uuid && <span class="mono">{inv.system.uuid}</span>],
              ['Board', [inv.baseboard?.vendor, inv.baseboard?.product].filter(Boolean).join(' ')],
              ['Chassis', [inv.chassis?.type, inv.chassis?.serial && `serial ${inv.chassis.serial}`].filter(Boolean).join(', ')],
              ['BIOS', [inv.bios?.vendor, inv.bios?.version, inv.bios?.date].filter(Boolean).join(' ')],
            ]}
          />
        </article>
        <article class="card">
          <h3>CPU</h3>
          <KV
            items={[
              ['Model', cpu.model],
              ['Vendor', cpu.vendor],
              ['Sockets', cpu.sockets],
              ['Cores', cpu.cores],
              ['Threads', cpu.threads],
            ]}
          />
          {cpu.flags && cpu.flags.length > 0 && (
            <details>
              <summary>{cpu.flags.length} CPU flags</summary>
              <p class="flags mono">{cpu.flags.join(' ')}</p>
            </details>
          )}
        </article>
        <article class="card">
          <h3>Memory</h3>
          <KV items={[['Installed', bytes(mem.total_bytes)], ['Usable', mem.usable_bytes ? bytes(mem.usable_bytes) : undefined]]} />
          {mem.dimms && mem.dimms.length > 0 && (
            <table class="list compact" aria-label="Memory modules">
              <thead><tr><th>Slot</th><th>Size</th><th>Type</th><th>Speed</th><th>Maker</th></tr></thead>
              <tbody>
                {mem.dimms.map((d, i) => (
                  <tr key={i}>
                    <td>{d.locator}{d.bank && <div class="sub">{d.bank}</div>}</td>
                    <td>{bytes(d.size_bytes)}</td>
                    <td>{[d.type, d.form_factor].filter(Boolean).join(' ')}</td>
                    <td>{d.speed_mts ? `${d.speed_mts} MT/s` : '—'}</td>
                    <td>{d.manufacturer}{d.part_number && <div class="sub">{d.part_number}</div>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </article>
        <article class="card">
          <h3>BMC</h3>
          {inv.bmc ? (
            <KV items={[['Interface', inv.bmc.interface], ['Type', inv.bmc.type], ['Address', inv.bmc.address]]} />
          ) : (
            <p class="muted">No IPMI or Redfish host interface found.</p>
          )}
        </article>
      </div>

      <h3>Disks</h3>
      {inv.disks!.length === 0 ? (
        <p class="muted">No disks reported.</p>
      ) : (
        <div class="table-wrap">
          <table class="list" aria-label="Disks">
            <thead>
              <tr><th>Name</th><th>Size</th><th>Model</th><th>Serial / WWN</th><th>Type</th><th>Stable path</th></tr>
            </thead>
            <tbody>
              {inv.disks!.map((d) => (
                <tr key={diskID(d)}>
                  <td class="mono">{d.path || d.name}</td>
                  <td>{bytes(d.size_bytes)}</td>
                  <td>{[d.vendor, d.model].filter(Boolean).join(' ') || '—'}</td>
                  <td class="mono">{d.serial || '—'}{d.wwn && <div class="sub">{d.wwn}</div>}</td>
                  <td>
                    {d.rotational ? 'rotational' : 'solid state'}
                    {d.removable && ', removable'}
                    {d.read_only && ', read-only'}
                    {d.driver && <div class="sub">{d.driver}</div>}
                  </td>
                  <td class="mono small">{d.by_path || '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <h3>Network interfaces</h3>
      {inv.nics!.length === 0 ? (
        <p class="muted">No network interfaces reported.</p>
      ) : (
        <div class="table-wrap">
          <table class="list" aria-label="Network interfaces">
            <thead>
              <tr><th>Name</th><th>MAC</th><th>Link</th><th>Driver</th><th>LLDP neighbour</th></tr>
            </thead>
            <tbody>
              {inv.nics!.map((n, i) => (
                <tr key={n.mac ?? i}>
                  <td>{n.name}{n.pci_address && <div class="sub mono">{n.pci_address}</div>}</td>
                  <td class="mono">{n.mac}</td>
                  <td>
                    <span class={n.link ? 'link-up' : 'link-down'}>{n.link ? 'up' : 'down'}</span>
                    {n.link && <div class="sub">{speed(n.speed_mbps)}</div>}
                    {n.operstate && <div class="sub">state {n.operstate}</div>}
                  </td>
                  <td>{n.driver || '—'}</td>
                  <td>
                    {n.lldp ? (
                      <>
                        {n.lldp.system_name || n.lldp.chassis_id} port {n.lldp.port_id}
                        {n.lldp.port_description && <div class="sub">{n.lldp.port_description}</div>}
                        {n.lldp.vlan ? <div class="sub">VLAN {n.lldp.vlan}</div> : null}
                      </>
                    ) : (
                      <span class="muted">none seen</span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <h3>GPUs</h3>
      {inv.gpus!.length === 0 ? (
        <p class="muted">No GPUs.</p>
      ) : (
        <ul class="plain">
          {inv.gpus!.map((g, i) => (
            <li key={g.address ?? i}>
              <span class="mono">{g.address}</span> {g.vendor ?? g.vendor_id} {g.device ?? g.device_id}
              {g.driver && <span class="muted"> ({g.driver})</span>}
            </li>
          ))}
        </ul>
      )}

      <div class="grid">
        <article class="card">
          <h3>NFS mounts</h3>
          {inv.nfs_mounts!.length === 0 ? (
            <p class="muted">None.</p>
          ) : (
            <ul class="plain">
              {inv.nfs_mounts!.map((n, i) => (
                <li key={i} class="mono">
                  {n.server}:{n.export} on {n.mount_point} ({n.fstype})
                </li>
              ))}
            </ul>
          )}
        </article>
        <article class="card">
          <h3>iSCSI sessions</h3>
          {inv.iscsi_sessions!.length === 0 ? (
            <p class="muted">None.</p>
          ) : (
            <ul class="plain">
              {inv.iscsi_sessions!.map((s, i) => (
                <li key={i}>
                  <span class="mono">{s.target_name}</span> {s.portal && `at ${s.portal}`}
                  {s.initiator && <div class="sub">initiator {s.initiator}</div>}
                </li>
              ))}
            </ul>
          )}
        </article>
      </div>

      {inv.pci!.length > 0 && (
        <details class="pci">
          <summary>{inv.pci!.length} PCI devices</summary>
          <div class="table-wrap">
            <table class="list compact" aria-label="PCI devices">
              <thead><tr><th>Address</th><th>Class</th><th>Vendor</th><th>Device</th><th>Driver</th></tr></thead>
              <tbody>
                {inv.pci!.map((p, i) => (
                  <tr key={p.address ?? i}>
                    <td class="mono">{p.address}</td>
                    <td>{p.class_name || p.class}</td>
                    <td>{p.vendor || p.vendor_id}</td>
                    <td>{p.device || p.device_id}</td>
                    <td>{p.driver || '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </details>
      )}
      {inv.collected_at && <p class="muted small">Collected {new Date(inv.collected_at).toLocaleString()}, schema version {inv.schema_version}.</p>}
    </div>
  );
}
