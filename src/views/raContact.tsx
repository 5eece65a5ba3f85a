import type { Config } from '../config/index.js';

/**
 * Who to ask when no way back in fits: the registration authority, as words that stand in a sentence ("Contact …",
 * "ask … to check who you are"). A link when LATCHKEY_RA_CONTACT_URL is set; otherwise the same words everywhere, as
 * there is nowhere to send people but to whoever does that job in their organisation.
 */
export function RaContact(props: { config: Pick<Config, 'raContactUrl'> }) {
  const url = props.config.raContactUrl;
  return url ? <a href={url}>your registration authority</a> : <>your organisation’s registration authority or IT service desk</>;
}
