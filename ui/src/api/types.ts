// Short names for the generated API types (schema.d.ts is generated from
// ../openapi.json by `npm run gen`; never edit it by hand).
import type { components } from './schema';

type S = components['schemas'];

export type Machine = S['Machine'];
export type MachineList = S['MachineList'];
export type MachineEvent = S['MachineEvent'];
export type Cluster = S['Cluster'];
export type ClusterCreate = S['ClusterCreate'];
export type Profile = S['Profile'];
export type AuditEntry = S['AuditEntry'];
export type ApproveRequest = S['ApproveRequest'];
export type Network = S['Network'];
export type Lease = S['Lease'];
export type Segment = S['Segment'];
export type BootScript = S['BootScript'];
export type WhoAmI = S['WhoAmI'];
export type Registration = S['Registration'];
export type TokenStatus = S['TokenStatus'];
export type TokenCheck = S['TokenCheck'];
export type Summary = S['Summary'];
export type GitOpsStatus = S['GitOpsStatus'];
export type About = S['About'];
