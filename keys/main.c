/* flexo-keys: Ed25519 identities (key generation, public keys, key IDs) and
 * the threshold-signed consortium roster. */
#include "commands.h"
#include "flexo/cli.h"

static const fx_command commands[] = {
    {"keygen", "create a key pair (secret file 0600, optional passphrase)",
     cmd_keygen},
    {"pubkey", "print the public key of a secret key file", cmd_pubkey},
    {"fingerprint", "print the key ID of a key", cmd_fingerprint},
    {"roster", "create, edit, sign, verify and show a roster", cmd_roster},
};

int main(int argc, char **argv)
{
	fx_logger log;
	if (fx_cli_init_logger(&argc, &argv, &log, "flexo-keys") != 0)
		return 2;
	return fx_cli_dispatch(
	    "flexo-keys", "Keys and roster of a flexo consortium.", argc, argv,
	    commands, (int)(sizeof(commands) / sizeof(*commands)), &log);
}
