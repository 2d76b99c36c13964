"""DeleteProfile: one profile's seed deleted on a presented token with profiles, by its
family's delete write (the title stays; a burn never writes over a seed, so this is the
separate, explicit action a person asked for: `tokenstation delete --profile N`)."""

from __future__ import annotations

from tokenstation.daemon.cards import StationError, StationPort
from tokenstation.daemon.events import ErrorKind, ProfileDeleted
from tokenstation.daemon.families.table import family_of


async def delete_profile(
    station: StationPort, serial: str, profile: int, *, reader: str = ""
) -> ProfileDeleted:
    """The seed of ``profile`` of the presented token ``serial``; a token without
    profiles, or without this one, is refused with nothing sent."""
    p = station.find(serial, reader)
    family = family_of(p)
    held = family.capabilities(p.model).profiles
    if held <= 1:
        raise StationError(
            ErrorKind.INVALID,
            f"token {p.serial} ({p.model_name}) has no profiles",
            "Profiles exist only on multi-profile tokens (Token2 Molto2).",
        )
    if not 0 <= profile < held:
        raise StationError(
            ErrorKind.INVALID, f"profile {profile}: give 0..{held - 1}", "Nothing was sent."
        )
    done = await station.write(p, family.delete_write(station, profile))
    assert isinstance(done, ProfileDeleted)
    return done
